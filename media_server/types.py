"""The shared vocabulary: what every room of the server speaks.

Audio, transcripts, chat messages and provider failures are plain values
defined here, at the bottom of the import graph: audio/, listening/, text.py,
the turn, the session and the providers all import them, and this module
imports nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
class ToolCall:
    """A function the model asked to run: ``arguments`` is the JSON text it
    wrote (parsed and checked against the tool's schema by the tool box)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    # An assistant message that asked for tools carries its calls; a "tool"
    # message answers one of them, named by ``tool_call_id``.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""

    def wire(self) -> dict[str, object]:
        """The message as OpenAI's chat API takes it."""
        out: dict[str, object] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
            out["content"] = self.content or None
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True, slots=True)
class ReplyOptions:
    """Per-agent generation settings passed with every reply request."""

    temperature: float = 0.7
    max_tokens: int = 150
    # The behaviour an offline engine should follow: "receptionist", "sales",
    # "callcenter" or "generic". Cloud models ignore it (the system prompt rules).
    persona: str = "generic"
    # Functions the model may call, in OpenAI's ``tools`` format ({"type":
    # "function", "function": {name, description, parameters}}).
    tools: tuple[dict[str, Any], ...] = ()


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

    def by_stage(self) -> dict[str, str]:
        """As the page's events carry them."""
        return {"stt": self.stt, "llm": self.llm, "tts": self.tts}
