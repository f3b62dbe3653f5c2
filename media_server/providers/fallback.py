"""Engines of one stage in fallback order, and which of them are resting.

``STT_PROVIDER=openai,pocketsphinx`` (or ``auto`` with keys) makes a chain:
the turn asks the first engine that is not resting; one that fails before
its first item hands the same request to the next (deadlines.first_item),
so a rejected key or a dead service costs the person one slower turn, not
the call. An engine rests after a failure no retry fixes soon (a rejected
key, no quota, a refused request, a deadline) or after
``REPEATED_FAILURES`` in a row, for ``cooldown_s``; then it is tried again
first. If every engine rests, all are tried anyway: a chance beats none.

The chain is shared by every session of the process (what one call learns
about a key spares the others). It stands in for its preferred engine where
one engine is enough (the engine's name on the page, whether it streams, a
speculative transcript), so callers see the stage's protocol either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, TypeVar

from media_server.types import (
    AudioChunk,
    ChatMessage,
    ProviderError,
    ReplyOptions,
    Stage,
    ToolCall,
    Transcript,
    Utterance,
)

log = logging.getLogger(__name__)

E = TypeVar("E")

# Kinds that mean the engine will fail the next request too.
RESTING_KINDS = frozenset({"auth", "quota", "invalid", "timeout"})
REPEATED_FAILURES = 2  # retryable failures in a row that make an engine rest
DEFAULT_COOLDOWN_S = 60.0


class EngineChain(Generic[E]):
    def __init__(
        self,
        stage: Stage,
        engines: Sequence[E],
        *,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not engines:
            raise ValueError(f"{stage}: a chain needs at least one engine")
        self.stage: Stage = stage
        self.engines: tuple[E, ...] = tuple(engines)
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._failures = [0] * len(self.engines)
        self._resting_until = [float("-inf")] * len(self.engines)

    # ---- policy (pure, clock injected) ----------------------------------

    def resting(self, engine: E) -> bool:
        return self._clock() < self._resting_until[self._index(engine)]

    def order(self) -> list[E]:
        """Engines to try, in turn: those not resting in the configured
        order, then the resting ones (a chance beats none)."""
        awake = [e for e in self.engines if not self.resting(e)]
        return awake + [e for e in self.engines if e not in awake]

    @property
    def preferred(self) -> E:
        return self.order()[0]

    def failed(self, engine: E, err: ProviderError) -> None:
        i = self._index(engine)
        self._failures[i] += 1
        if err.kind in RESTING_KINDS or self._failures[i] >= REPEATED_FAILURES:
            self._resting_until[i] = self._clock() + self._cooldown_s
            self._failures[i] = 0
            log.warning(
                "%s engine %s rests for %gs after %s",
                self.stage,
                _name(engine),
                self._cooldown_s,
                err.kind,
            )

    def succeeded(self, engine: E) -> None:
        i = self._index(engine)
        self._failures[i] = 0
        self._resting_until[i] = float("-inf")

    def has_alternative(self, engine: E) -> bool:
        """Another engine could take this one's turns (not resting)."""
        return any(e is not engine and not self.resting(e) for e in self.engines)

    def _index(self, engine: E) -> int:
        for i, e in enumerate(self.engines):
            if e is engine:
                return i
        raise ValueError(f"{_name(engine)} is not in the {self.stage} chain")

    # ---- the stage protocol, through the preferred engine ----------------

    @property
    def name(self) -> str:
        return _name(self.preferred)

    @property
    def names(self) -> list[str]:
        return [_name(e) for e in self.engines]

    @property
    def capabilities(self) -> Any:  # the preferred engine's: STT or TTS capabilities
        return self.preferred.capabilities  # type: ignore[attr-defined]

    async def transcribe(self, utterance: Utterance) -> Transcript:
        return await self.preferred.transcribe(utterance)  # type: ignore[attr-defined]

    def open_stream(self) -> Any:  # SpeechToTextStream | None
        return self.preferred.open_stream()  # type: ignore[attr-defined]

    def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str | ToolCall]:
        return self.preferred.stream_reply(messages, options)  # type: ignore[attr-defined]

    def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioChunk]:
        return self.preferred.synthesize(text, voice)  # type: ignore[attr-defined]

    async def warm_up(self) -> None:
        for engine in self.engines:
            await engine.warm_up()  # type: ignore[attr-defined]

    async def close(self) -> None:
        for engine in self.engines:
            await engine.close()  # type: ignore[attr-defined]


def engines_of(provider: object) -> list:
    """What to try for a stage, in order: a chain's order, or the one engine."""
    return provider.order() if isinstance(provider, EngineChain) else [provider]


def report_failure(provider: object, engine: object, err: ProviderError) -> None:
    if isinstance(provider, EngineChain):
        provider.failed(engine, err)


def report_success(provider: object, engine: object) -> None:
    if isinstance(provider, EngineChain):
        provider.succeeded(engine)


def _name(engine: Any) -> str:
    return str(engine.name)
