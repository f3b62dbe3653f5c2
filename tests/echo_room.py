"""A room for echo tests and benches: the agent's voice played at 48 kHz,
heard back in a microphone at 16 kHz, late, quieter, and through a small
speaker (nothing below ~300 Hz), with or without a person talking over it."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

RATE = 16000


def small_speaker(x: np.ndarray) -> np.ndarray:
    """A one-pole high-pass at ~300 Hz and a soft clip: a phone's speaker."""
    a = 0.89
    diff = np.diff(x, prepend=0.0)
    # y[n] = a * (y[n-1] + x[n] - x[n-1]) in closed form, 256 samples at a time:
    # y_k = a^k * prev + sum_{j<=k} a^(k-j+1) * d_j
    y = np.empty_like(x)
    prev = 0.0
    for start in range(0, x.size, 256):
        d = diff[start : start + 256]
        powers = a ** np.arange(1, d.size + 1)
        y[start : start + d.size] = powers * (prev + a * np.cumsum(d / powers))
        prev = float(y[start + d.size - 1])
    return np.tanh(y * 1.5) / 1.5


def to_16k(pcm48k: bytes) -> np.ndarray:
    samples = np.frombuffer(pcm48k, dtype="<i2").astype(np.float64)
    return samples[: samples.size // 3 * 3].reshape(-1, 3).mean(axis=1)


def echo_of(played48k: bytes, *, level_db: float, delay_ms: float, length: int) -> np.ndarray:
    """What the microphone hears of ``played48k`` (16 kHz float, s16 scale)."""
    heard = small_speaker(to_16k(played48k) / 32768) * 32768 * 10 ** (level_db / 20)
    out = np.zeros(length)
    start = int(delay_ms * RATE / 1000)
    take = max(0, min(heard.size, length - start))
    out[start : start + take] = heard[:take]
    return out


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


class RoomMic(MediaStreamTrack):
    """A client's microphone in a room with a speaker and no echo cancellation:
    each 20 ms frame is what the person says plus the agent's voice, heard
    back ``delay_ms`` after it arrived, ``level_db`` down, through a small
    speaker.

    Feed it the agent's audio as it arrives (``hear``: 48 kHz mono and its
    RTP timestamp): it is played on the timestamps' steady clock, as a
    client's jitter buffer plays it, so the echo's delay holds still. The
    person speaks with ``say``."""

    kind = "audio"
    RATE_48K = 48000
    FRAME = 960

    def __init__(self, *, level_db: float | None, delay_ms: float) -> None:
        super().__init__()
        self._gain = None if level_db is None else 10 ** (level_db / 20)
        self._delay_s = delay_ms / 1000
        self._heard: dict[int, np.ndarray] = {}  # RTP timestamp -> the speaker's samples
        self._first: tuple[int, float] | None = None  # (timestamp, loop time it arrived)
        self._person = np.zeros(0)
        self._start: float | None = None
        self._n = 0
        self._pts = 0

    def hear(self, agent48k: np.ndarray, pts: int) -> None:
        if self._gain is None:
            return
        if self._first is None:
            self._first = (pts, asyncio.get_running_loop().time())
        self._heard[pts] = small_speaker(agent48k / 32768) * 32768 * self._gain

    def _echo(self, at: float) -> np.ndarray:
        """The speaker's 20 ms that the microphone picks up from loop time ``at``."""
        out = np.zeros(self.FRAME)
        if self._first is None:
            return out
        first_pts, arrived = self._first
        begin = first_pts + round((at - arrived - self._delay_s) * self.RATE_48K)
        base = begin - (begin - first_pts) % self.FRAME
        for pts in (base, base + self.FRAME):
            chunk = self._heard.pop(pts, None) if pts == base else self._heard.get(pts)
            if chunk is None:
                continue
            lo, hi = max(begin, pts), min(begin + self.FRAME, pts + chunk.size)
            if lo < hi:
                out[lo - begin : hi - begin] = chunk[lo - pts : hi - pts]
        for stale in [p for p in self._heard if p < base]:
            del self._heard[stale]
        return out

    async def say(self, pcm48k: bytes) -> None:
        """Speak now (over whatever the room plays); returns once it was sent."""
        person = np.frombuffer(pcm48k, dtype="<i2").astype(np.float64)
        self._person = np.concatenate([self._person, person])
        await asyncio.sleep(person.size / self.RATE_48K + 0.1)

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        self._n += 1
        due = self._start + self._n * 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))
        out = self._echo(due)
        take = min(self.FRAME, self._person.size)
        out[:take] += self._person[:take]
        self._person = self._person[take:]
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.FRAME)
        frame.planes[0].update(pcm16(out))
        frame.sample_rate = self.RATE_48K
        frame.time_base = fractions.Fraction(1, self.RATE_48K)
        frame.pts, self._pts = self._pts, self._pts + self.FRAME
        return frame
