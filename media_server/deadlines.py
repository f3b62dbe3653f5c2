"""A provider's stream under the turn's deadlines.

Every stage (STT, LLM, TTS) is a stream of items. The first item must come
within the stage's deadline (retried once per ``faults.retry_delay`` if the
turn still allows it); once it has, a pause longer than ``stall_factor``
times the deadline between two items is a hang. Both end the stream with a
``ProviderError(kind="timeout")``, which the turn reports like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from media_server import faults
from media_server.config import Settings
from media_server.providers.fallback import engines_of, report_failure, report_success
from media_server.types import ProviderError, Stage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StageDeadlines:
    """Seconds each stage has to its first useful item."""

    stt_s: float
    llm_s: float
    tts_s: float
    # Once a stream has started, a pause longer than this times the deadline is a hang.
    stall_factor: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> StageDeadlines:
        return cls(settings.stt_timeout_s, settings.llm_timeout_s, settings.tts_timeout_s)

    def first(self, stage: Stage) -> float:
        return {"stt": self.stt_s, "llm": self.llm_s, "tts": self.tts_s}[stage]

    def stall(self, stage: Stage) -> float:
        return self.first(stage) * self.stall_factor


Fallback = Callable[[Stage, str, str], None]


async def first_item(
    stage: Stage,
    provider: object,
    open_stream: Callable[[Any], AsyncIterator[Any]],
    deadlines: StageDeadlines,
    may_retry: Callable[[], bool],
    on_fallback: Fallback | None = None,
) -> tuple[Any, AsyncIterator[Any]] | tuple[None, None]:
    """The first item of a provider stream within the stage deadline, and
    the stream to read the rest from; ``(None, None)`` if it was empty.

    ``open_stream(engine)`` opens the stream on one engine. With a fallback
    chain (providers/fallback.py) an engine that fails before its first item
    hands the request to the next at once (``on_fallback(stage, from, to)``):
    nothing of it was heard, so nothing is repeated. The last engine gets the
    usual retry."""
    timeout_s = deadlines.first(stage)
    engines = engines_of(provider)
    index = 0
    attempt = 0  # on the current engine
    while True:
        engine = engines[index]
        attempt += 1
        stream = open_stream(engine)
        try:
            async with asyncio.timeout(timeout_s):
                first = await anext(stream)
        except StopAsyncIteration:
            await aclose(stream)
            return None, None
        except TimeoutError:
            await aclose(stream)
            err = ProviderError(stage, "timeout", f"{stage}: no answer in {timeout_s:g}s")
        except ProviderError as exc:
            await aclose(stream)
            err = exc
        except BaseException:
            await aclose(stream)
            raise
        else:
            report_success(provider, engine)
            return first, stream
        report_failure(provider, engine, err)
        if index + 1 < len(engines):
            index, attempt = index + 1, 0
            log.warning(
                "%s %s failed (%s); falling back to %s",
                stage,
                engine.name,
                err.kind,
                engines[index].name,
            )
            if on_fallback is not None:
                on_fallback(stage, engine.name, engines[index].name)
            continue
        delay = faults.retry_delay(err, attempt)
        if delay is None or not may_retry():
            raise err
        log.info("%s %s, retrying in %.2fs", stage, err.kind, delay)
        await asyncio.sleep(delay)


async def remaining_items(
    stage: Stage, stream: AsyncIterator[Any], deadlines: StageDeadlines
) -> AsyncIterator[Any]:
    """The rest of a started stream, each item within the stall deadline;
    the stream is closed however this ends."""
    stall = deadlines.stall(stage)
    try:
        while True:
            try:
                async with asyncio.timeout(stall):
                    item = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise ProviderError(stage, "timeout", f"{stage}: stalled for {stall:g}s") from None
            yield item
    finally:
        await aclose(stream)


async def aclose(stream: AsyncIterator[Any] | None) -> None:
    """Close a provider stream, ignoring how it fails to close."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
