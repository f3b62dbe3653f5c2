"""A room for echo tests and benches: the agent's voice played at 48 kHz,
heard back in a microphone at 16 kHz, late, quieter, and through a small
speaker (nothing below ~300 Hz), with or without a person talking over it."""

from __future__ import annotations

import numpy as np

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
