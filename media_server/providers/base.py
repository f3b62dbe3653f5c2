"""Provider protocols and value types.

Providers do I/O only: they turn an utterance into text, a conversation into
streamed reply text, or text into audio, and raise ``ProviderError`` when they
cannot. Timeouts, retries and the words a person sees live in ``turn.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Stage = Literal["stt", "llm", "tts"]

# What went wrong, in the terms the turn policy needs.
ErrorKind = Literal[
    "auth",  # 401/403: the key is wrong; retrying will not help
    "invalid",  # 400/404/422: the request itself is wrong
    "quota",  # 402 or an exhausted plan
    "rate_limited",  # 429
    "unavailable",  # 5xx, connection refused or reset
    "timeout",  # no useful byte before the deadline
    "bad_output",  # empty or non-audio output, unparseable reply
]

RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limited", "unavailable", "timeout"})


class ProviderError(Exception):
    """A provider could not do its job.

    The message is for logs and must never contain a key or token.
    """

    def __init__(
        self,
        stage: Stage,
        kind: ErrorKind,
        message: str = "",
        *,
        retryable: bool | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or f"{stage} provider failed: {kind}")
        self.stage: Stage = stage
        self.kind: ErrorKind = kind
        self.retryable: bool = kind in RETRYABLE_KINDS if retryable is None else retryable
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Utterance:
    """One finished user turn: 16-bit little-endian mono PCM."""

    pcm: bytes
    sample_rate: int = 16000
    # loop.time() when the person stopped speaking (start of the hangover).
    speech_ended_at: float = 0.0
    # loop.time() when the segmenter declared the turn over (end of hangover).
    turn_ended_at: float = 0.0
    # Peak level of the voiced part, dBFS; lets cloud STT skip near-silence.
    peak_dbfs: float = 0.0

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ReplyOptions:
    """Per-agent generation settings passed with every reply request."""

    temperature: float = 0.7
    max_tokens: int = 150
    # The behaviour an offline engine should follow: "receptionist", "sales",
    # "callcenter" or "generic". Cloud models ignore it (the system prompt rules).
    persona: str = "generic"


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A piece of synthesized speech.

    ``encoding`` is ``"pcm"`` (s16le, ``sample_rate`` Hz, ``channels``) or
    ``"mp3"`` (sample rate read from the stream). Decoding happens in
    ``media_server/audio``, so providers stay thin.
    """

    data: bytes
    encoding: Literal["pcm", "mp3"] = "pcm"
    sample_rate: int = 0
    channels: int = 1


@dataclass(frozen=True, slots=True)
class ProviderNames:
    stt: str
    llm: str
    tts: str


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
