"""The words of a spoken turn, the cheapest way there is.

In order: a speculative transcript that already covers the whole utterance
(taken at its last pause, interim.py); else the streaming decode, finished
(only the last frames are left); else, or if that fails, the whole
utterance transcribed, under the STT deadline with the usual one retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from media_server.deadlines import Fallback, StageDeadlines, aclose, first_item
from media_server.providers.base import SpeechToText, SpeechToTextStream
from media_server.types import ProviderError, Stage, Transcript, Utterance

log = logging.getLogger(__name__)


async def utterance_text(
    utterance: Utterance,
    *,
    stream: SpeechToTextStream | None,
    transcript: str | None,
    stt: SpeechToText,
    deadlines: StageDeadlines,
    on_result: Callable[[Stage, ProviderError | None], None] = lambda stage, err: None,
    on_fallback: Fallback | None = None,
) -> str:
    """The utterance's text ("" for none); ``on_result`` hears how the STT
    stage went when a provider was asked (the error budget counts it)."""
    if transcript is not None:
        if stream is not None:
            stream.cancel()
        return transcript.strip()
    try:
        text = await transcribe(utterance, stream, stt, deadlines, on_fallback)
    except ProviderError as err:
        on_result("stt", err)
        raise
    on_result("stt", None)
    return text


async def transcribe(
    utterance: Utterance,
    stream: SpeechToTextStream | None,
    stt: SpeechToText,
    deadlines: StageDeadlines,
    on_fallback: Fallback | None = None,
) -> str:
    """Finish the streaming decode if there is one, else (or if it fails)
    transcribe the whole utterance."""
    if stream is not None:
        try:
            async with asyncio.timeout(deadlines.stt_s):
                return (await stream.finish()).text.strip()
        except (ProviderError, TimeoutError) as exc:
            # The whole utterance is still here: decode it the usual way.
            log.info("streamed STT failed (%r); decoding again", exc)

    async def once(engine: SpeechToText) -> AsyncIterator[Transcript]:
        yield await engine.transcribe(utterance)

    first, rest = await first_item("stt", stt, once, deadlines, lambda: True, on_fallback)
    await aclose(rest)
    return (first.text if first is not None else "").strip()
