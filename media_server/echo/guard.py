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

# Longer than the longest echo path (network round trip, jitter buffers, the
# room): after this much quiet the agent's voice cannot come back any more.
IDLE_AFTER_S = 1.0
# The timeline of what was played keeps this much (the canceller looks back
# on its own; this only has to cover the time a frame waits to be cleaned).
REFERENCE_KEEP_S = 2.0
# The inbound audio's own timeline is re-anchored on the clock when it drifts
# further than this (a stalled loop, a burst after a network hiccup).
MAX_DRIFT_S = 0.2
REFERENCE_RATE = 48000  # the outbound track's rate


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
        begin = self.index(start)
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


def downsample_48k(pcm: bytes) -> np.ndarray:
    """48 kHz s16le -> 16 kHz: the mean of each 3 samples (a cheap low-pass;
    the canceller needs the reference's shape, not hi-fi)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    usable = samples.size - samples.size % 3
    return samples[:usable].reshape(-1, 3).mean(axis=1).astype(np.int16)


class EchoGuard:
    """One per session, fed by the outbound track and the inbound audio."""

    def __init__(self, make_canceller: Callable[[], Canceller] | None) -> None:
        """``make_canceller`` is called once, by ``prepare()`` or at the first
        agent audio; None: the guard is off and hands the microphone's audio
        on as it comes."""
        self._make_canceller = make_canceller
        self._canceller: Canceller | None = None
        self.reference = ReferenceTimeline()
        self._anchor: int | None = None  # inbound timeline: absolute index of its next sample
        self._pending = b""
        # Counters (metrics, the bench).
        self.frames_cleaned = 0
        self.frames_passed = 0

    @classmethod
    def from_setting(cls, mode: str) -> EchoGuard:
        """``ECHO_GUARD``: "aec" (WebRTC AEC3) or "off"."""
        return cls(Aec3Canceller if mode == "aec" else None)

    def prepare(self) -> None:
        """Make the canceller now (off the event loop: the first one in a
        process loads a native library) instead of at the first echo."""
        if self._make_canceller is not None and self._canceller is None:
            self._canceller = self._make_canceller()

    def played(self, pcm48k: bytes, at: float) -> None:
        """A frame of the agent's voice left the server at clock time ``at``."""
        if self._make_canceller is None:
            return
        self.reference.add(downsample_48k(pcm48k), at)

    def clean(self, pcm: bytes, now: float) -> bytes:
        """Inbound 16 kHz s16le mono whose last sample arrived at ``now``,
        less the echo of what was played; same length as given, except a
        trailing part of a 10 ms frame, which is kept for the next call."""
        if self._make_canceller is None:
            return pcm
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        if not whole:
            return b""
        first = self._place(whole // 2, now - len(self._pending) / 2 / RATE)
        if now - self.reference.last_sound_at > IDLE_AFTER_S:
            self.frames_passed += whole // FRAME_BYTES
            return data[:whole]
        if self._canceller is None:
            self._canceller = self._make_canceller()
        out = []
        for n, offset in enumerate(range(0, whole, FRAME_BYTES)):
            reference = self.reference.read(first + n * FRAME_SAMPLES, FRAME_SAMPLES)
            out.append(
                self._canceller.process(reference.tobytes(), data[offset : offset + FRAME_BYTES])
            )
        self.frames_cleaned += len(out)
        return b"".join(out)

    def _place(self, samples: int, end: float) -> int:
        """The absolute index of the first of ``samples`` inbound samples
        ending at clock time ``end``: the inbound stream's own running
        count, re-anchored on the clock if it drifted."""
        on_clock = self.reference.index(end) - samples
        if self._anchor is None or abs(self._anchor - on_clock) > MAX_DRIFT_S * RATE:
            self._anchor = on_clock
        first = self._anchor
        self._anchor += samples
        return first
