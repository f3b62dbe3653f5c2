"""Levels of s16le PCM in dBFS: the RMS of a frame, the peak of an utterance."""

from __future__ import annotations

import math

import numpy as np

# dBFS reported for digital silence: finite, so it survives JSON and comparisons.
SILENCE_DBFS = -120.0


def frame_dbfs(pcm: bytes) -> float:
    """RMS level of s16le PCM in dBFS (SILENCE_DBFS for all zeros)."""
    x = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.float32)
    energy = float(np.dot(x, x)) / max(1, x.size)
    if energy <= 0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10 * math.log10(energy / (32768.0 * 32768.0)))


def peak_dbfs(pcm: bytes) -> float:
    """Peak sample level of s16le PCM in dBFS (SILENCE_DBFS for all zeros)."""
    if len(pcm) < 2:
        return SILENCE_DBFS
    x = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    # max/min separately: abs() of int16 -32768 overflows.
    peak = max(int(x.max()), -int(x.min()))
    if peak == 0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20 * math.log10(peak / 32768))
