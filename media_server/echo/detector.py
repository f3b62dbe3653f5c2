"""Is the agent's voice coming back in this microphone at all?

Most clients cancel their own echo (the page keeps the browser's on), and
then the canceller has nothing to learn: AEC3, never converged, keeps
suppressing the microphone wherever the reference is loud, and a person
talking over the agent would be heard late (measured: the reply stopped
1.3 s after they began, instead of ~0.3 s). So the detector listens: does
the microphone's last half second correlate with what was played, at some
delay up to half a second (normalized cross-correlation at 4 kHz)?

- ``unknown`` (the start): the guard hands on the cancelled audio, safe
  for a speakerphone;
- ``absent``: for ``ABSENT_AFTER`` looks while the agent spoke, no echo:
  the microphone's audio goes on as it comes (the detector keeps looking:
  the person may switch to a speaker);
- ``found``: two looks in a row correlate at the same delay (within
  ``SAME_DELAY_S``): an echo; cancelled audio for the rest of the call (the
  echo path is the client's device). One look is not enough: a person's
  voice against the agent's reaches ~0.4 now and then, at a delay that
  wanders, while an echo comes back at one steady delay.
"""

from __future__ import annotations

import numpy as np

DECIMATE = 4  # 16 kHz -> 4 kHz: the shape of speech is all it needs
WINDOW_S = 0.5
MAX_DELAY_S = 0.5
# An echo through a small speaker and two Opus codecs still correlates
# 0.5-0.9 with what was played; a person's voice against the agent's stays
# under ~0.25 (measured on espeak voices).
THRESHOLD = 0.4
QUIET = 1e-6  # mean square (full scale 1): nothing to judge
ABSENT_AFTER = 4  # looks (of JUDGE_EVERY_S) while the agent spoke, with no echo
SAME_DELAY_S = 0.005  # two looks at an echo find it this close in delay


def _shape(x: np.ndarray) -> np.ndarray:
    x = x[: x.size - x.size % DECIMATE].astype(np.float64) / 32768
    x = x.reshape(-1, DECIMATE).mean(axis=1)
    return x - x.mean()


def _loud(x: np.ndarray) -> bool:
    return x.size > 0 and float(np.mean(x * x)) >= QUIET


def echo_correlation(near: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """The best normalized correlation of ``near`` with ``reference`` (16 kHz
    s16 samples; ``reference`` starts ``MAX_DELAY_S`` before ``near`` and ends
    with it), over every delay from 0 to ``MAX_DELAY_S``, and that delay (s)."""
    a, b = _shape(near), _shape(reference)
    if b.size < a.size or not _loud(a) or not _loud(b):
        return 0.0, 0.0
    size = 1 << int(np.ceil(np.log2(a.size + b.size)))
    # corr[k] = sum_t a[t] * b[t + k]: near against the reference from offset k.
    corr = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    lags = b.size - a.size + 1
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    window_energy = energy[a.size : a.size + lags] - energy[:lags]
    norm = np.sqrt(np.maximum(window_energy, 1e-12) * float(np.dot(a, a)))
    scores = corr[:lags] / norm
    best = int(np.argmax(scores))
    # Offset ``best`` into the reference is a delay of (lags - 1 - best) samples.
    return float(scores[best]), (lags - 1 - best) * DECIMATE / 16000


def _gain(near: np.ndarray, reference: np.ndarray, delay_s: float, rate: int) -> float:
    """The echo's amplitude against what was played ``delay_s`` before it."""
    shift = round(delay_s * rate)
    stop = reference.size - shift
    played = reference[stop - near.size : stop].astype(np.float64)
    heard = near.astype(np.float64)
    return float(np.sqrt(np.dot(heard, heard) / max(np.dot(played, played), 1.0)))


class EchoDetector:
    def __init__(self, rate: int = 16000) -> None:
        self._rate = rate
        self.state = "unknown"  # "absent" | "found"
        self._misses = 0  # looks while the agent spoke that found no echo
        self._echo_delay: float | None = None  # the last look's, if it correlated
        self.best = 0.0  # the highest correlation seen (the bench reports it)
        # Once found: the echo's delay (s) and its level against what was
        # played (amplitude ratio), from the looks that found it.
        self.delay_s = 0.0
        self.gain = 0.0

    @property
    def window(self) -> int:
        return int(WINDOW_S * self._rate)

    @property
    def lookback(self) -> int:
        return int(MAX_DELAY_S * self._rate)

    def judge(self, near: np.ndarray, reference: np.ndarray) -> str:
        """``near``: up to ``window`` samples just heard; ``reference``: what
        was played from ``lookback`` samples before them to their end."""
        if self.state == "found":
            return self.state
        score, delay = echo_correlation(near, reference)
        self.best = max(self.best, score)
        if score >= THRESHOLD:
            last, self._echo_delay = self._echo_delay, delay
            gain = _gain(near, reference, delay, self._rate)
            if last is not None and abs(delay - last) <= SAME_DELAY_S:
                self.state = "found"
                self.delay_s, self.gain = delay, max(gain, self.gain)
            else:
                self.gain = gain
            return self.state
        self._echo_delay = None
        if _loud(_shape(reference[-near.size :])):  # the agent spoke, and no echo of it
            self._misses += 1
            if self._misses >= ABSENT_AFTER:
                self.state = "absent"
        return self.state
