"""The turn-taking policy: what the person's speech means for the conversation.

Fed 16 kHz PCM, the time it ends and whether the agent holds the floor (a
turn is running), it returns decisions for the session to carry out:

- ``PersonStarted``: speech began (the session shows "listening" if the
  agent is quiet, and counts it as activity).
- ``TurnEnded``: the person finished while the agent was quiet: answer this
  utterance (with the streaming transcript, if one was decoded meanwhile).
- ``BargeIn``: the person has talked over the agent for ``barge_in_min_ms``:
  stop the agent now.
- ``SpeechIgnored``: speech that is not a turn: too short (a blip), or it
  ended over the agent without reaching the barge-in minimum (a
  backchannel, a cough, the agent's own echo).

While a turn is spoken, its audio is fed to a streaming speech-to-text
decoder, when the engine offers one, so the transcript is ready when the
turn ends. The listener owns that stream until it hands it over in
``TurnEnded`` or cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from media_server.listening.segmenter import (
    Segmenter,
    SegmenterConfig,
    SpeechDropped,
    SpeechEnded,
    SpeechStarted,
)
from media_server.providers.base import SpeechToTextStream
from media_server.types import Utterance

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PersonStarted:
    at: float


@dataclass(frozen=True, slots=True)
class TurnEnded:
    utterance: Utterance
    # The same utterance decoded while it was spoken, or None.
    stt_stream: SpeechToTextStream | None


@dataclass(frozen=True, slots=True)
class BargeIn:
    at: float


@dataclass(frozen=True, slots=True)
class SpeechIgnored:
    reason: str  # "too_short" | "over_agent"
    at: float


Decision = PersonStarted | TurnEnded | BargeIn | SpeechIgnored


class Listener:
    """One per session; not thread-safe."""

    def __init__(
        self,
        config: SegmenterConfig,
        *,
        barge_in_min_ms: int,
        open_stream: Callable[[], SpeechToTextStream | None] = lambda: None,
        is_speech: Callable[[bytes], bool] | None = None,
    ) -> None:
        """``open_stream`` starts a streaming decode of one turn (None: the
        engine does not stream, or all its decoders are busy)."""
        self._segmenter = Segmenter(config, is_speech=is_speech, on_audio=self._on_turn_audio)
        self._barge_in_min_ms = barge_in_min_ms
        self._open_stream = open_stream
        self._stream: SpeechToTextStream | None = None
        self._stream_refused = False
        self._closed = False

    @property
    def person_speaking(self) -> bool:
        return self._segmenter.in_speech

    def feed(self, pcm: bytes, now: float, *, agent_has_floor: bool) -> list[Decision]:
        """Process PCM whose last sample ends at ``now``."""
        if self._closed:
            return []
        decisions: list[Decision] = []
        for event in self._segmenter.feed(pcm, now):
            if isinstance(event, SpeechStarted):
                decisions.append(PersonStarted(event.at))
            elif isinstance(event, SpeechEnded):
                stream = self._take_stream()
                if not agent_has_floor:
                    decisions.append(TurnEnded(event.utterance, stream))
                    continue
                if stream is not None:
                    stream.cancel()
                decisions.append(SpeechIgnored("over_agent", event.utterance.turn_ended_at))
            elif isinstance(event, SpeechDropped):
                if (stream := self._take_stream()) is not None:
                    stream.cancel()
                decisions.append(SpeechIgnored(event.reason, event.at))
        if (
            agent_has_floor
            and self._segmenter.in_speech
            and self._segmenter.speech_ms >= self._barge_in_min_ms
        ):
            decisions.append(BargeIn(now))
        return decisions

    def close(self) -> None:
        """Cancel a streaming decode in progress; feed() ignores audio after."""
        self._closed = True
        if (stream := self._take_stream()) is not None:
            stream.cancel()

    def _on_turn_audio(self, pcm: bytes) -> None:
        """The segmenter's audio of the turn in progress: decode it now."""
        if self._stream is None:
            if self._stream_refused or self._closed:
                return
            self._stream = self._open_stream()
            if self._stream is None:  # no streaming engine, or all decoders busy
                self._stream_refused = True
                return
        self._stream.feed(pcm)

    def _take_stream(self) -> SpeechToTextStream | None:
        stream, self._stream = self._stream, None
        self._stream_refused = False
        return stream
