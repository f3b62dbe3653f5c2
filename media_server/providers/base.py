"""Provider protocols: what an engine must do, and the set a process uses.

Providers do I/O only: they turn an utterance into text, a conversation into
streamed reply text, or text into audio, and raise ``ProviderError`` when they
cannot. Timeouts, retries and the words a person sees live in ``faults.py``
and ``turn.py``; the values they exchange in ``media_server/types.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from media_server.types import (
    AudioChunk,
    ChatMessage,
    ProviderNames,
    ReplyOptions,
    Transcript,
    Utterance,
)


@runtime_checkable
class SpeechToText(Protocol):
    name: str

    async def transcribe(self, utterance: Utterance) -> Transcript: ...

    async def close(self) -> None: ...


class SpeechToTextStream(Protocol):
    """One utterance decoded while it is being spoken (optional capability:
    an engine offers it with ``open_stream()``)."""

    def feed(self, pcm: bytes) -> None: ...

    async def finish(self) -> Transcript: ...

    def cancel(self) -> None: ...


@runtime_checkable
class LanguageModel(Protocol):
    name: str

    def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str]: ...

    async def close(self) -> None: ...


@runtime_checkable
class TextToSpeech(Protocol):
    name: str

    def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioChunk]: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Providers:
    """The three engines a process talks through; shared by all sessions."""

    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def names(self) -> ProviderNames:
        return ProviderNames(stt=self.stt.name, llm=self.llm.name, tts=self.tts.name)

    async def close(self) -> None:
        for p in (self.stt, self.llm, self.tts):
            await p.close()
