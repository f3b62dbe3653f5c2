"""The turn-taking policy: what the person's speech means for the conversation.

Fed 16 kHz PCM, the time it ends and whether the agent holds the floor (a
turn is running), it returns decisions for the session to carry out
(``decisions.py``: speech started, a pause, the turn ended, hold, barge-in,
false interruption, speech ignored).

When a turn is over is ``EndOfTurn``'s call (end_of_turn.py): at each pause
the words heard so far set how long the pause must last. While the agent
holds the floor the fixed pause applies: a backchannel is not a sentence.

While a turn is spoken, its audio is fed to a streaming speech-to-text
decoder, when the engine offers one, so the transcript is ready when the
turn ends. The listener owns that stream until it hands it over in
``TurnEnded`` or cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from media_server.listening.completion import Completion
from media_server.listening.decisions import (
    BargeIn,
    Decision,
    FalseInterruption,
    Hold,
    PauseHeard,
    PersonStarted,
    SpeechIgnored,
    TurnEnded,
)
from media_server.listening.end_of_turn import EndOfTurn
from media_server.listening.segmenter import (
    PauseStarted,
    Segmenter,
    SegmenterConfig,
    SegmenterEvent,
    SpeechDropped,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    segmenter_config,
)
from media_server.providers.base import SpeechToTextStream

if TYPE_CHECKING:
    from media_server.config import Settings

log = logging.getLogger(__name__)

# How long after the last sound a pause is reported (PauseHeard): early
# enough for a 100-150 ms transcription to be back before the shortest wait.
PAUSE_REPORT_MS = 80


@dataclass(frozen=True, slots=True)
class _Heard:
    """A transcript of the turn up to a pause, and how it reads."""

    pause: int
    text: str
    covers_turn: bool  # it transcribed all of the turn's audio so far
    reading: Completion | None


class Listener:
    """One per session; not thread-safe."""

    def __init__(
        self,
        config: SegmenterConfig,
        *,
        barge_in_min_ms: int,
        barge_in_confirm_ms: int | None = None,
        end_of_turn: EndOfTurn | None = None,
        open_stream: Callable[[], SpeechToTextStream | None] = lambda: None,
        is_speech: Callable[[bytes], bool] | None = None,
        transcribe_pauses: bool = False,
    ) -> None:
        """``config.silence_ms`` is replaced by the end-of-turn policy's longest
        wait. ``open_stream`` starts a streaming decode of one turn (None: the
        engine does not stream, or all its decoders are busy).
        ``transcribe_pauses``: report pauses (``PauseHeard``) whatever the
        policy, for a preemptive reply (preemptive.py) to start on."""
        self.end_of_turn = end_of_turn or EndOfTurn(detector="silence")
        eot = self.end_of_turn
        # A pause is reported early (PAUSE_REPORT_MS after the last sound), so
        # a transcript of the turn so far can be back by the time a finished
        # sentence may end.
        report_ms = min(PAUSE_REPORT_MS, eot.min_wait_ms)
        # Pauses are reported whatever the policy: a hold over the agent is
        # released at one; only the lexical policy reads words at them.
        pause_ms = max(config.frame_ms, report_ms)
        config = replace(config, silence_ms=eot.longest_wait_ms, pause_ms=pause_ms)
        self._segmenter = Segmenter(config, is_speech=is_speech, on_audio=self._on_turn_audio)
        self._min_speech_ms = config.min_speech_ms
        self._barge_in_min_ms = barge_in_min_ms
        # None: no hold stage, the minimum is an interruption at once.
        self._barge_in_confirm_ms = max(barge_in_min_ms, barge_in_confirm_ms or 0)
        self._holding = False  # a Hold is out and not yet settled
        self._open_stream = open_stream
        self._stream: SpeechToTextStream | None = None
        self._stream_refused = False
        self._closed = False
        self._transcribe_pauses = transcribe_pauses
        self._pause = 0  # bumped at each pause and each resumption
        self._in_pause = False
        self._heard: _Heard | None = None
        self._awaited_pause: int | None = None  # its transcript is on its way

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        is_speech: Callable[[bytes], bool],
        open_stream: Callable[[], SpeechToTextStream | None],
        transcribe_pauses: bool,
    ) -> Listener:
        return cls(
            segmenter_config(settings),
            is_speech=is_speech,
            barge_in_min_ms=settings.barge_in_min_ms,
            barge_in_confirm_ms=settings.barge_in_confirm_ms,
            end_of_turn=EndOfTurn.from_settings(settings),
            transcribe_pauses=transcribe_pauses,
            open_stream=open_stream,
        )

    @property
    def person_speaking(self) -> bool:
        return self._segmenter.in_speech

    @property
    def waiting_on_unfinished(self) -> bool:
        """In a pause after words that do not end a sentence: still listening."""
        reading = self._reading() if self._in_pause else None
        return reading is not None and reading.verdict == "incomplete"

    @property
    def current_pause(self) -> int | None:
        """The pause the person is in (as ``PauseHeard.pause``), None if none."""
        return self._pause if self._in_pause else None

    def interim_transcript(self, pause: int, text: str, *, covers_turn: bool) -> bool:
        """The transcript of the turn up to ``pause`` (from ``PauseHeard``).
        ``covers_turn``: it transcribed all of that audio (a batch engine), so
        it can stand for the turn's transcript. False if it came too late."""
        if self._closed or pause != self._pause or not self._in_pause:
            return False
        # Read once here, not at every 20 ms frame of the pause that asks.
        self._heard = _Heard(pause, text, covers_turn, self.end_of_turn.reading(text))
        return True

    def transcript_requested(self, pause: int) -> None:
        """A transcript of the turn up to ``pause`` is on its way. Until it
        comes, that pause waits up to the longest wait instead of the default:
        a slow decode (Whisper on a busy core) must not cut an unfinished
        sentence at the default wait just because its words are late."""
        self._awaited_pause = pause

    def transcript_missing(self, pause: int) -> None:
        """That transcript will not come (failed, timed out, no words): the
        pause is read as one with no words (the default wait)."""
        if self._awaited_pause == pause:
            self._awaited_pause = None

    def feed(self, pcm: bytes, now: float, *, agent_has_floor: bool) -> list[Decision]:
        """Process PCM whose last sample ends at ``now``."""
        if self._closed:
            return []
        decisions: list[Decision] = []
        for event in self._segmenter.feed(pcm, now):
            self._on_event(event, agent_has_floor, decisions)
        segmenter = self._segmenter
        if self._in_pause and segmenter.in_speech and self.end_of_turn.reads_words:
            paused_ms = (now - segmenter.last_sound_end) * 1000
            if paused_ms >= self._required_wait_ms(agent_has_floor) - 1e-6:
                if (ended := segmenter.end_now(now)) is not None:
                    self._on_event(ended, agent_has_floor, decisions)
        self._over_agent(now, agent_has_floor, decisions)
        return decisions

    def _over_agent(self, now: float, agent_has_floor: bool, decisions: list[Decision]) -> None:
        """Speech over the agent: hold at the minimum, cut at the confirmation,
        release if the person stopped short of it (or the speech ended)."""
        segmenter = self._segmenter
        if not agent_has_floor or not segmenter.in_speech:
            if self._holding:
                self._holding = False
                if agent_has_floor:  # it ended short of an interruption
                    decisions.append(FalseInterruption(now))
            return
        spoken = segmenter.speech_ms
        if spoken >= self._barge_in_confirm_ms:
            self._holding = False
            decisions.append(BargeIn(now))
        elif spoken >= self._barge_in_min_ms and not self._holding:
            if not self._in_pause:
                self._holding = True
                decisions.append(Hold(now))
        elif self._holding and self._in_pause:
            paused_ms = (now - segmenter.last_sound_end) * 1000
            if paused_ms >= self.end_of_turn.min_wait_ms - 1e-6:
                self._holding = False  # "mm-hmm": the agent goes on
                decisions.append(FalseInterruption(now))

    def close(self) -> None:
        """Cancel a streaming decode in progress; feed() ignores audio after."""
        self._closed = True
        if (stream := self._take_stream()) is not None:
            stream.cancel()

    # ---- internals -------------------------------------------------------

    def _on_event(
        self, event: SegmenterEvent, agent_has_floor: bool, decisions: list[Decision]
    ) -> None:
        if isinstance(event, SpeechStarted):
            self._heard = None
            decisions.append(PersonStarted(event.at))
        elif isinstance(event, PauseStarted):
            self._pause += 1
            self._in_pause = True
            # Worth transcribing: the person holds the floor and it is not a blip
            # (a knock or a click that the VAD let through never reaches STT).
            if (
                not agent_has_floor
                and (self.end_of_turn.reads_words or self._transcribe_pauses)
                and self._segmenter.speech_ms >= self._min_speech_ms
            ):
                pcm = self._segmenter.turn_pcm()
                decisions.append(PauseHeard(self._pause, pcm, self._stream))
        elif isinstance(event, SpeechResumed):
            self._pause += 1  # whatever was heard at the pause is stale now
            self._in_pause = False
        elif isinstance(event, SpeechEnded):
            stream = self._take_stream()
            reading, transcript = self._reading(), self._turn_transcript()
            self._end_pause()
            if not agent_has_floor:
                decisions.append(TurnEnded(event.utterance, stream, transcript, reading))
                return
            if stream is not None:
                stream.cancel()
            decisions.append(SpeechIgnored("over_agent", event.utterance.turn_ended_at))
        elif isinstance(event, SpeechDropped):
            self._end_pause()
            if (stream := self._take_stream()) is not None:
                stream.cancel()
            decisions.append(SpeechIgnored(event.reason, event.at))

    def _end_pause(self) -> None:
        self._in_pause = False
        self._heard = None
        self._pause += 1

    def _current(self) -> _Heard | None:
        """What was heard at this pause (None once the person went on)."""
        heard = self._heard
        return heard if heard is not None and heard.pause == self._pause else None

    def _reading(self) -> Completion | None:
        heard = self._current()
        return heard.reading if heard is not None else None

    def _turn_transcript(self) -> str | None:
        heard = self._current()
        return heard.text if heard is not None and heard.covers_turn else None

    def _required_wait_ms(self, agent_has_floor: bool) -> float:
        eot = self.end_of_turn
        if agent_has_floor:
            return eot.default_wait_ms  # a backchannel is not a sentence
        if self._segmenter.speech_ms < self._min_speech_ms:
            return eot.min_wait_ms  # a blip: dropped as soon as it is over
        reading = self._reading()
        if reading is None and self._awaited_pause == self._pause:
            return eot.max_wait_ms  # the words are on their way: wait for them
        return eot.wait_ms(reading)

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
