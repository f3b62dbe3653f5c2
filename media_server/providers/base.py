"""Provider protocols: what an engine must do, and the set a process uses.

Providers do I/O only: they turn an utterance into text, a conversation into
streamed reply text, or text into audio, and raise ``ProviderError`` when they
cannot. Timeouts, retries and the words a person sees live in ``faults.py``
and ``turn.py``; the values they exchange in ``media_server/types.py``.

What an engine can do beyond the minimum (decode while the person speaks,
stream audio, which encoding and rate) is data, ``STTCapabilities`` and
``TTSCapabilities``, not the presence or absence of a method: every engine
implements every method of its protocol, a no-op where it has nothing to do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from media_server.types import (
    AudioChunk,
    ChatMessage,
    ProviderNames,
    ReplyOptions,
    ToolCall,
    Transcript,
    Utterance,
)


@dataclass(frozen=True, slots=True)
class STTCapabilities:
    """What a speech-to-text engine can do beyond ``transcribe()``."""

    streaming: bool  # open_stream() decodes while the person speaks
    # A stream's interim() at a pause is the final transcript of the audio so
    # far (a cloud engine transcribing what was committed), not a rough
    # partial decode: it may stand for the turn's words and start a reply.
    final_interims: bool = False


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    """How a text-to-speech engine delivers its audio."""

    streaming: bool  # audio is yielded as it is made, before the whole text is done
    encoding: Literal["pcm", "mp3"]
    sample_rate: int  # of the PCM it yields; 0 when read from the stream (MP3)


@runtime_checkable
class SpeechToTextStream(Protocol):
    """One utterance decoded while it is being spoken, from ``SpeechToText.open_stream()``.

    ``feed`` takes 16 kHz s16le mono PCM as it arrives; ``finish`` ends the
    utterance and returns its transcript; ``cancel`` drops it (barge-in, a
    turn that turned out to be noise). Exactly one of them ends a stream.
    """

    def feed(self, pcm: bytes) -> None: ...

    async def interim(self) -> Transcript:
        """The words decoded so far, without ending the utterance (read at
        each pause by the end-of-turn policy)."""
        ...

    async def finish(self) -> Transcript: ...

    def cancel(self) -> None: ...


@runtime_checkable
class SpeechToText(Protocol):
    name: str
    capabilities: STTCapabilities

    async def transcribe(self, utterance: Utterance) -> Transcript: ...

    def open_stream(self) -> SpeechToTextStream | None:
        """A stream for a turn that is starting, or None: not a streaming engine
        (``capabilities.streaming`` is false), or all its streaming decoders are
        busy. On None the caller transcribes the whole utterance instead."""
        ...

    async def warm_up(self) -> None:
        """Load now (at server start) what the first turn would otherwise wait for."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class LanguageModel(Protocol):
    name: str

    def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str | ToolCall]:
        """Text deltas as they come, then any tool calls the model made
        (``options.tools`` offers them; an engine that cannot call tools
        ignores them and only talks)."""
        ...

    async def warm_up(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class TextToSpeech(Protocol):
    name: str
    capabilities: TTSCapabilities

    def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioChunk]: ...

    async def warm_up(self) -> None: ...

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
