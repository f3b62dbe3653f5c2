"""Turn segmentation: 16 kHz mono PCM in, speech start/end events out.

Pure and synchronous (no asyncio, no clock of its own): the caller passes the
time of the end of each chunk and every event time is derived from it, so
tests drive it with synthetic audio and exact times.

A turn:
  idle --(>= start_ms voiced within a short window)--> SpeechStarted
       --(silence_ms of non-voiced frames after the last voiced one)--> SpeechEnded
                                                   or SpeechDropped("too_short")
       --(max_utterance_s of audio)--> SpeechEnded (cut; a new turn may start)

Note: webrtcvad smooths its own decisions and keeps calling frames voiced for
~80-160 ms after a sound stops (measured: 4-8 frames of 20 ms, mode-dependent).
``silence_ms`` counts from the last frame the VAD called voiced, so the real
end-of-turn delay after the last sound is silence_ms plus that.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import webrtcvad

from media_server.audio.dbfs import SILENCE_DBFS, frame_dbfs, peak_dbfs
from media_server.types import Utterance

if TYPE_CHECKING:
    from media_server.config import Settings

# webrtcvad accepts only these (its C code rejects anything else).
_VAD_RATES = (8000, 16000, 32000, 48000)
_VAD_FRAME_MS = (10, 20, 30)
# A voiced frame "sounds" (is speech, not the VAD's hangover) within this
# range of the turn's loudest frame and above the floor.
SOUND_RANGE_DB = 35.0
SOUND_FLOOR_DBFS = -55.0


@dataclass(frozen=True)
class SegmenterConfig:
    sample_rate: int = 16000
    frame_ms: int = 20
    aggressiveness: int = 2  # webrtcvad mode 0-3
    start_ms: int = 60  # voiced audio needed (within a short window) to declare speech started
    silence_ms: int = 500  # hangover: trailing non-voiced time that ends the turn
    preroll_ms: int = 300  # audio kept from before the first voiced frame
    min_speech_ms: int = 250  # voiced audio below this -> utterance dropped (blip)
    max_utterance_s: float = 30.0  # cut an over-long turn here (emit it as an utterance)
    # Trailing non-voiced audio kept at the end of an utterance. STT needs a little
    # release, not the whole hangover (pocketsphinx runs at ~0.3x real time, so
    # shipping 500 ms of silence would cost ~150 ms of CPU per turn).
    tail_ms: int = 200
    # A pause: this much trailing non-voiced time reports ``PauseStarted`` (and
    # voice after it ``SpeechResumed``) so an end-of-turn policy can end the
    # turn before ``silence_ms`` with ``end_now()``. None: no pause events.
    pause_ms: int | None = None

    def __post_init__(self) -> None:
        if self.sample_rate not in _VAD_RATES:
            raise ValueError(f"sample_rate must be one of {_VAD_RATES}, got {self.sample_rate}")
        if self.frame_ms not in _VAD_FRAME_MS:
            raise ValueError(f"frame_ms must be one of {_VAD_FRAME_MS}, got {self.frame_ms}")
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0-3, got {self.aggressiveness}")
        for name in ("start_ms", "silence_ms", "preroll_ms", "min_speech_ms", "tail_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.pause_ms is not None and not self.frame_ms <= self.pause_ms <= self.silence_ms:
            raise ValueError(f"pause_ms must be within frame_ms..silence_ms, got {self.pause_ms}")
        if self.silence_ms < self.frame_ms:
            raise ValueError(f"silence_ms must be >= frame_ms ({self.frame_ms})")
        if self.max_utterance_s * 1000 < max(self.start_ms, self.frame_ms):
            raise ValueError(f"max_utterance_s too small: {self.max_utterance_s}")

    @property
    def frame_bytes(self) -> int:
        return self.sample_rate * self.frame_ms // 1000 * 2


@dataclass(frozen=True)
class SpeechStarted:
    at: float  # start time of the first voiced frame of the turn


@dataclass(frozen=True)
class SpeechEnded:
    utterance: Utterance


@dataclass(frozen=True)
class PauseStarted:
    """The person paused inside a turn; ``at``: end of the last voiced frame."""

    at: float


@dataclass(frozen=True)
class SpeechResumed:
    """Voice again after a ``PauseStarted``: the same turn goes on."""

    at: float


@dataclass(frozen=True)
class SpeechDropped:
    reason: str  # "too_short"
    at: float


SegmenterEvent = SpeechStarted | SpeechEnded | SpeechDropped | PauseStarted | SpeechResumed


class Segmenter:
    """Feed PCM, get turn events. One instance per session; not thread-safe."""

    def __init__(
        self,
        config: SegmenterConfig,
        *,
        is_speech: Callable[[bytes], bool] | None = None,
        on_audio: Callable[[bytes], None] | None = None,
    ) -> None:
        """``is_speech`` replaces webrtcvad (tests, other VADs); it gets one frame.

        ``on_audio`` receives the audio of a turn while it is being spoken:
        the pre-roll and the frames that started it when speech starts, then
        each frame as it joins the turn (streaming speech-to-text decodes it
        then, instead of after the end of the turn).
        """
        self.config = config
        self._on_audio = on_audio
        if is_speech is None:
            vad = webrtcvad.Vad(config.aggressiveness)
            rate = config.sample_rate
            is_speech = lambda frame: vad.is_speech(frame, rate)  # noqa: E731
        self._is_speech = is_speech
        self._frame_bytes = config.frame_bytes
        self._frame_s = config.frame_ms / 1000
        self._bytes_per_s = config.sample_rate * 2

        fm = config.frame_ms
        self._start_frames = max(1, math.ceil(config.start_ms / fm))
        # "Within a short window": twice the voiced time needed, so one
        # unvoiced frame inside a syllable does not restart the count.
        self._window_frames = 2 * self._start_frames
        self._preroll_frames = config.preroll_ms // fm
        self._silence_frames = max(1, math.ceil(config.silence_ms / fm))
        self._tail_frames = min(self._silence_frames, config.tail_ms // fm)
        self._pause_frames = (
            max(1, math.ceil(config.pause_ms / fm)) if config.pause_ms is not None else None
        )
        self._paused = False
        self._peak_db = SILENCE_DBFS  # the loudest voiced frame of the turn
        self._last_sound_end = 0.0
        self._since_sound = 0  # frames since the last one that sounded
        self._max_frames = max(1, int(config.max_utterance_s * 1000) // fm)

        self._remainder = b""
        # Idle: recent (frame, voiced, end_time) for pre-roll and start detection.
        self._history: deque[tuple[bytes, bool, float]] = deque(
            maxlen=self._preroll_frames + self._window_frames
        )
        self._window_voiced = 0  # voiced frames among the last _window_frames of history
        # In a turn.
        self._in_speech = False
        self._frames: list[bytes] = []
        self._voiced_frames = 0
        self._trailing_unvoiced = 0
        self._last_voiced_end = 0.0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def speech_ms(self) -> int:
        """Voiced ms in the current turn (0 when idle); barge-in compares this."""
        return self._voiced_frames * self.config.frame_ms if self._in_speech else 0

    @property
    def last_sound_end(self) -> float:
        """Clock time the turn's last frame with the level of speech ended
        (0 when idle): the end of speech, without webrtcvad's hangover."""
        return self._last_sound_end if self._in_speech else 0.0

    def turn_pcm(self) -> bytes:
        """The turn so far, as ``SpeechEnded`` would carry it if it ended now."""
        drop = max(0, self._trailing_unvoiced - self._tail_frames)
        return b"".join(self._frames[: len(self._frames) - drop])

    def end_now(self, end_time: float) -> SpeechEnded | SpeechDropped | None:
        """End the turn in progress at once (an end-of-turn policy decided it
        is over before ``silence_ms``); None when there is none."""
        if not self._in_speech:
            return None
        return self._finish(end_time)

    def reset(self) -> None:
        """Forget everything: partial frame, pre-roll and any turn in progress."""
        self._remainder = b""
        self._history.clear()
        self._window_voiced = 0
        self._end_turn()

    def feed(self, pcm: bytes, now: float) -> list[SegmenterEvent]:
        """Process s16le mono PCM whose last sample ends at clock time ``now``."""
        data = self._remainder + pcm if self._remainder else pcm
        fb = self._frame_bytes
        whole = len(data) - len(data) % fb
        self._remainder = data[whole:]
        events: list[SegmenterEvent] = []
        for offset in range(0, whole, fb):
            # Bytes after this frame's end (incl. the kept remainder) set its time.
            end_time = now - (len(data) - offset - fb) / self._bytes_per_s
            event = self._frame(data[offset : offset + fb], end_time)
            if event is not None:
                events.extend(event)
        return events

    # -- per frame ---------------------------------------------------------

    def _frame(self, frame: bytes, end_time: float) -> list[SegmenterEvent] | None:
        voiced = bool(self._is_speech(frame))
        if not self._in_speech:
            return self._idle_frame(frame, voiced, end_time)

        self._frames.append(frame)
        if self._on_audio is not None:
            self._on_audio(frame)
        events: list[SegmenterEvent] | None = None
        sounding = False
        if voiced:
            self._voiced_frames += 1
            self._trailing_unvoiced = 0
            self._last_voiced_end = end_time
            sounding = self._sounds(frame)
        else:
            self._trailing_unvoiced += 1
            if self._trailing_unvoiced >= self._silence_frames:
                return [self._finish(end_time)]
        if sounding:
            self._last_sound_end = end_time
            self._since_sound = 0
            if self._paused:
                self._paused = False
                events = [SpeechResumed(at=end_time - self._frame_s)]
        else:
            self._since_sound += 1
            if self._since_sound == self._pause_frames:
                self._paused = True
                events = [PauseStarted(at=self._last_sound_end)]
        if len(self._frames) >= self._max_frames:
            # Cut: the audio so far is a turn of its own; if speech goes on, the
            # next start needs fresh voiced frames (history is empty).
            return [*(events or []), self._finish(end_time)]
        return events

    def _sounds(self, frame: bytes) -> bool:
        """A voiced frame with the level of speech, not of the VAD's own
        hangover: within ``SOUND_RANGE_DB`` of the turn's loudest frame.
        webrtcvad calls frames voiced for ~80-160 ms after a sound stops;
        pauses are timed from the last frame that sounds."""
        level = frame_dbfs(frame)
        if level > self._peak_db:
            self._peak_db = level
        return level >= max(SOUND_FLOOR_DBFS, self._peak_db - SOUND_RANGE_DB)

    def _idle_frame(
        self, frame: bytes, voiced: bool, end_time: float
    ) -> list[SegmenterEvent] | None:
        hist = self._history
        # Keep the running window count in step with the frame sliding out of it.
        if len(hist) >= self._window_frames and hist[-self._window_frames][1]:
            self._window_voiced -= 1
        hist.append((frame, voiced, end_time))
        if voiced:
            self._window_voiced += 1
        if self._window_voiced < self._start_frames:
            return None

        items = list(hist)
        window_start = len(items) - min(self._window_frames, len(items))
        first = next(i for i in range(window_start, len(items)) if items[i][1])
        begin = max(0, first - self._preroll_frames)
        self._in_speech = True
        self._frames = [f for f, _, _ in items[begin:]]
        self._voiced_frames = sum(1 for _, v, _ in items[first:] if v)
        self._trailing_unvoiced = 0  # the frame that tipped the count is voiced
        self._last_voiced_end = end_time
        self._peak_db = max(frame_dbfs(f) for f, v, _ in items[first:] if v)
        self._last_sound_end = end_time
        self._since_sound = 0
        hist.clear()
        self._window_voiced = 0
        if self._on_audio is not None:
            self._on_audio(b"".join(self._frames))
        return [SpeechStarted(at=items[first][2] - self._frame_s)]

    def _finish(self, end_time: float) -> SpeechEnded | SpeechDropped:
        voiced_ms = self._voiced_frames * self.config.frame_ms
        if voiced_ms < self.config.min_speech_ms:
            self._end_turn()
            return SpeechDropped(reason="too_short", at=end_time)
        drop = max(0, self._trailing_unvoiced - self._tail_frames)
        frames = self._frames[: len(self._frames) - drop] if drop else self._frames
        pcm = b"".join(frames)
        utterance = Utterance(
            pcm=pcm,
            sample_rate=self.config.sample_rate,
            speech_ended_at=self._last_sound_end,
            turn_ended_at=end_time,
            peak_dbfs=peak_dbfs(pcm),
        )
        self._end_turn()
        return SpeechEnded(utterance=utterance)

    def _end_turn(self) -> None:
        self._in_speech = False
        self._paused = False
        self._frames = []
        self._voiced_frames = 0
        self._trailing_unvoiced = 0


def segmenter_config(settings: Settings) -> SegmenterConfig:
    """The segmenter's settings (VAD_* in the environment). Its ``silence_ms``
    is the end-of-turn policy's to set (``Listener``)."""
    return SegmenterConfig(
        aggressiveness=settings.vad_aggressiveness,
        silence_ms=settings.turn_silence_ms,
        preroll_ms=settings.vad_preroll_ms,
        min_speech_ms=settings.vad_min_speech_ms,
        max_utterance_s=settings.vad_max_utterance_s,
    )
