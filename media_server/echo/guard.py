"""The echo guard: the server knows what it played, so it takes its own voice
out of what the microphone sends back before the listener hears it.

Speakerphones, SIP phones and plain WebRTC clients without echo
cancellation return the agent's voice 30-150 ms late (plus the network's
round trip), 6-20 dB down and filtered by a small speaker. Heard as it is,
it would interrupt the agent and be transcribed as the person's words.

Pure and synchronous (no asyncio, no clock of its own): ``played()`` gets
each frame of the agent's voice with the clock time it left the server,
``clean()`` each inbound frame with the time it arrived. Both streams are
laid on one timeline at the reference's real-time pace: every 10 ms of
inbound audio is cancelled against the 10 ms the server played at that
same moment (silence if it played nothing), and the canceller (AEC3) finds
the round-trip delay from there. Muting the microphone would not do:
a person talking over the agent must still be heard.

While the agent has been quiet for longer than any echo can take to come
back (``IDLE_AFTER_S``), inbound audio passes untouched and costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from media_server.echo.canceller import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    RATE,
    Aec3Canceller,
    Canceller,
)
from media_server.echo.detector import EchoDetector

# Longer than the longest echo path (network round trip, jitter buffers, the
# room): after this much quiet the agent's voice cannot come back any more.
IDLE_AFTER_S = 1.0
# The timeline of what was played keeps this much (the canceller looks back
# on its own; this only has to cover the time a frame waits to be cleaned).
REFERENCE_KEEP_S = 2.0
# The inbound audio is laid on the clock by its own sample count, anchored at
# the earliest it ever arrived: a stall (a busy loop, a network hiccup) delays
# frames that were captured on time, and a burst after it must not move the
# timeline. Only if it arrives this much later for LATE_FOR_S on end (samples
# lost for good) is it re-anchored.
MAX_LATE_S = 0.3
LATE_FOR_S = 2.0
REFERENCE_RATE = 48000  # the outbound track's rate
# How often to look for an echo: often until the detector has decided; once
# it found the client cancels its own echo, seldom (only in case the person
# switches to a speaker mid-call): each look costs ~1 ms.
JUDGE_EVERY_S = 0.25
JUDGE_ABSENT_EVERY_S = 1.0
# A 10 ms frame this much louder (energy; 10 dB) than the loudest the echo can
# be within PREDICT_SPREAD_FRAMES of its delay is the person, and if the
# canceller removed more than MOSTLY_REMOVED of it (6 dB), it is passed as heard.
LOUDER_THAN_ECHO = 10.0
PREDICT_SPREAD_FRAMES = 3
MOSTLY_REMOVED = 0.25


class ReferenceTimeline:
    """What the server played, 16 kHz, indexed by the clock time of each sample."""

    def __init__(self, rate: int = RATE, keep_s: float = REFERENCE_KEEP_S) -> None:
        self._rate = rate
        self._size = int(keep_s * rate)
        self._ring = np.zeros(self._size, dtype=np.int16)
        self._end: int | None = None  # absolute index one past the last written sample
        self.last_sound_at = float("-inf")  # clock time the last played frame ended

    def index(self, t: float) -> int:
        return round(t * self._rate)

    def add(self, samples: np.ndarray, start: float) -> None:
        """``samples`` played from clock time ``start``. The track plays on a
        steady 20 ms grid, but the time it reports for a frame wobbles with
        the event loop by a few ms: a frame within a second of the last one
        is laid on that grid (whole frames after it), so the reference has
        neither gaps nor overlaps that the echo has not."""
        begin = self.index(start)
        if self._end is not None and samples.size and abs(begin - self._end) < self._rate:
            begin = self._end + round((begin - self._end) / samples.size) * samples.size
        stop = begin + samples.size
        if self._end is not None and begin > self._end:
            self._write(self._end, np.zeros(min(begin - self._end, self._size), np.int16))
        self._write(begin, samples)
        self._end = stop if self._end is None else max(self._end, stop)
        self.last_sound_at = max(self.last_sound_at, start + samples.size / self._rate)

    def read(self, begin: int, count: int) -> np.ndarray:
        """``count`` samples from absolute index ``begin``; zeros where nothing was played."""
        out = np.zeros(count, dtype=np.int16)
        if self._end is None:
            return out
        lo, hi = max(begin, self._end - self._size), min(begin + count, self._end)
        for start, stop in _slices(lo, hi, self._size):
            ring = start % self._size
            out[start - begin : stop - begin] = self._ring[ring : ring + stop - start]
        return out

    def _write(self, begin: int, samples: np.ndarray) -> None:
        if samples.size > self._size:
            begin, samples = begin + samples.size - self._size, samples[-self._size :]
        for start, stop in _slices(begin, begin + samples.size, self._size):
            ring = start % self._size
            self._ring[ring : ring + stop - start] = samples[start - begin : stop - begin]


def _slices(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) cut where it wraps around a ring of ``size``."""
    out = []
    while lo < hi:
        stop = min(hi, (lo // size + 1) * size)
        out.append((lo, stop))
        lo = stop
    return out


def _low_pass_phases() -> list[np.ndarray]:
    """A 47-tap low-pass (7 kHz at 48 kHz), padded to 48 taps and split into
    its three phases, so decimating by 3 computes only the kept outputs."""
    n = np.arange(DECIMATOR_TAPS) - (DECIMATOR_TAPS - 1) / 2
    kernel = np.sinc(2 * 7000 / REFERENCE_RATE * n) * np.hamming(DECIMATOR_TAPS)
    padded = np.zeros(DECIMATOR_TAPS + 1)
    padded[:DECIMATOR_TAPS] = kernel / kernel.sum()
    return [padded[r::3].copy() for r in range(3)]


DECIMATOR_TAPS = 47
_PHASES = _low_pass_phases()


def decimate(raw48k: np.ndarray, count: int) -> np.ndarray:
    """``count`` 16 kHz samples from 48 kHz ones: output ``i`` filters input
    ``3i .. 3i + 47`` (``raw48k`` holds ``3 * count + 45`` samples). The
    reference must match the microphone's band, which the inbound resampler
    filters properly: a bare mean of 3 samples aliases, and the canceller
    cannot model what aliasing adds."""
    x = raw48k.astype(np.float64)
    out = np.zeros(count)
    for r, taps in enumerate(_PHASES):
        out += np.correlate(x[r::3][: count + taps.size - 1], taps, "valid")
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


class EchoGuard:
    """One per session, fed by the outbound track and the inbound audio."""

    def __init__(self, make_canceller: Callable[[], Canceller] | None) -> None:
        """``make_canceller`` is called once, at the first agent audio (under a
        millisecond once ``warm_canceller()`` loaded the native library);
        None: the guard is off and hands the microphone's audio on as it
        comes."""
        self._make_canceller = make_canceller
        self._canceller: Canceller | None = None
        # What was played, kept as it left (48 kHz): it is filtered down to
        # the microphone's rate only where it is read, so a client found to
        # cancel its own echo costs a copy per frame, not a filter.
        self.reference = ReferenceTimeline(rate=REFERENCE_RATE)
        self._anchor: int | None = None  # inbound timeline: absolute index of its next sample
        self._pending = b""
        self.detector = EchoDetector()
        self._recent = np.zeros(0, dtype=np.int16)  # the last half second heard
        self._unjudged = 0  # samples heard since the detector last judged
        self._late_samples = 0  # inbound audio arriving later than MAX_LATE_S in a row
        # Counters (metrics, the bench).
        self.frames_cleaned = 0
        self.frames_passed = 0

    @classmethod
    def from_setting(cls, mode: str) -> EchoGuard:
        """``ECHO_GUARD``: "aec" (WebRTC AEC3) or "off"."""
        return cls(Aec3Canceller if mode == "aec" else None)

    def played(self, pcm48k: bytes, at: float) -> None:
        """A frame of the agent's voice left the server at clock time ``at``."""
        if self._make_canceller is None:
            return
        self.reference.add(np.frombuffer(pcm48k, dtype="<i2"), at)

    def played_16k(self, begin: int, count: int) -> np.ndarray:
        """What was played from 16 kHz sample index ``begin`` on, at 16 kHz."""
        taps = DECIMATOR_TAPS - 1
        return decimate(self.reference.read(3 * begin - taps, 3 * count + taps - 1), count)

    def clean(self, pcm: bytes, now: float) -> bytes:
        """Inbound 16 kHz s16le mono whose last sample arrived at ``now``,
        less the echo of what was played (unless the detector found there is
        none); same length as given, except a trailing part of a 10 ms
        frame, which is kept for the next call."""
        if self._make_canceller is None:
            return pcm
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        if not whole:
            return b""
        first = self._place(whole // 2, now - len(self._pending) / 2 / RATE)
        if first / RATE - self.reference.last_sound_at > IDLE_AFTER_S:
            self.frames_passed += whole // FRAME_BYTES
            return data[:whole]
        if self.detector.state == "absent":  # the client cancels its own echo
            self._listen_for_echo(data[:whole], first + whole // 2)
            self.frames_passed += whole // FRAME_BYTES
            return data[:whole]
        if self._canceller is None:
            self._canceller = self._make_canceller()
        out = []
        played = self.played_16k(first, whole // 2)
        for n, offset in enumerate(range(0, whole, FRAME_BYTES)):
            reference = played[n * FRAME_SAMPLES : (n + 1) * FRAME_SAMPLES]
            out.append(
                self._canceller.process(reference.tobytes(), data[offset : offset + FRAME_BYTES])
            )
        self.frames_cleaned += len(out)
        self._listen_for_echo(data[:whole], first + whole // 2)
        if self.detector.state == "absent":
            return data[:whole]  # no echo in this microphone: the person as they come
        if self.detector.state == "found":
            self._let_the_person_through(data[:whole], out, first)
        return b"".join(out)  # (until it knows, or once it found one: cancelled)

    def _let_the_person_through(self, heard: bytes, cleaned: list[bytes], first: int) -> None:
        """AEC3 still learning (its first seconds) mutes whatever the
        microphone hears over the agent's voice, the person's first words
        with it (a talk-over 1.5 s into a call was heard 0.3 s late). Where
        the microphone is far louder than the echo can be (its level and
        delay are the detector's) and the canceller took most of it away,
        that is the person: the frame goes on as it was heard."""
        detector = self.detector
        frames = len(cleaned)
        near = np.frombuffer(heard, dtype="<i2").astype(np.float64).reshape(frames, FRAME_SAMPLES)
        near_energy = np.mean(near * near, axis=1)
        # What was played around the echo's delay, 10 ms blocks at 48 kHz
        # (the level is all this needs: no filter).
        spread, block = PREDICT_SPREAD_FRAMES, 3 * FRAME_SAMPLES
        start = 3 * (first - round(detector.delay_s * RATE)) - spread * block
        played = self.reference.read(start, (frames + 2 * spread) * block).astype(np.float64)
        played_energy = np.mean(played.reshape(-1, block) ** 2, axis=1)
        loudest = played_energy[:frames]
        for shift in range(1, 2 * spread + 1):
            loudest = np.maximum(loudest, played_energy[shift : shift + frames])
        person = near_energy > detector.gain**2 * loudest * LOUDER_THAN_ECHO
        for n in np.flatnonzero(person):
            out = np.frombuffer(cleaned[n], dtype="<i2").astype(np.float64)
            if float(np.mean(out * out)) < near_energy[n] * MOSTLY_REMOVED:
                cleaned[n] = heard[n * FRAME_BYTES : (n + 1) * FRAME_BYTES]

    def _listen_for_echo(self, heard: bytes, end: int) -> None:
        """Keep the last half second heard (ending at absolute index ``end``)
        and, every ``JUDGE_EVERY_S`` (``JUDGE_ABSENT_EVERY_S`` once it found
        none), ask the detector whether it holds the
        agent's voice."""
        detector = self.detector
        if detector.state == "found":
            return
        samples = np.frombuffer(heard, dtype="<i2")
        self._recent = np.concatenate([self._recent, samples])[-detector.window :]
        self._unjudged += samples.size
        every_s = JUDGE_ABSENT_EVERY_S if detector.state == "absent" else JUDGE_EVERY_S
        if self._unjudged >= every_s * RATE:
            self._unjudged = 0
            span = self._recent.size + detector.lookback
            detector.judge(self._recent, self.played_16k(end - span, span))

    def _place(self, samples: int, end: float) -> int:
        """The absolute index of the first of ``samples`` inbound samples
        ending at clock time ``end``: the inbound stream's own running count,
        from the earliest it arrived (see ``MAX_LATE_S``)."""
        on_clock = round(end * RATE) - samples
        if self._anchor is None or on_clock < self._anchor:
            self._anchor = on_clock  # earlier than ever: less network delay
        elif on_clock - self._anchor > MAX_LATE_S * RATE:
            self._late_samples += samples
            if self._late_samples >= LATE_FOR_S * RATE:
                self._anchor = on_clock
        else:
            self._late_samples = 0
        first = self._anchor
        self._anchor += samples
        return first
