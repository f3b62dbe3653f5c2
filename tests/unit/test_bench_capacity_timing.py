"""bench.capacity's late-frame arithmetic on RTP timestamps (random origin, wraps)."""

from __future__ import annotations

from array import array

import numpy as np

from bench.capacity import FRAME_SAMPLES, frame_timing, unwrap_rtp


def stream(start: int, frames: int) -> tuple[array, array]:
    """On-time packets every 20 ms whose 32-bit timestamps start at ``start``."""
    arrivals = array("d", (100.0 + i * 0.02 for i in range(frames)))
    timestamps = array("q", ((start + i * FRAME_SAMPLES) % 2**32 for i in range(frames)))
    return arrivals, timestamps


def test_unwrap_continues_across_the_32_bit_wrap() -> None:
    _, ts = stream(2**32 - 3 * FRAME_SAMPLES, 6)
    assert list(unwrap_rtp(np.frombuffer(ts, dtype=np.int64))) == [
        i * FRAME_SAMPLES for i in range(6)
    ]


def test_on_time_stream_across_a_wrap_has_no_late_or_lost_frames() -> None:
    arrivals, ts = stream(2**32 - 50 * FRAME_SAMPLES, 200)
    timing = frame_timing(arrivals, ts)
    assert (timing["frames"], timing["late"], timing["lost"]) == (200, 0, 0)
    assert timing["p99_ms"] < 1e-6


def test_late_and_missing_packets_are_counted() -> None:
    arrivals, ts = stream(12345, 200)
    arrivals[100] += 0.025  # 25 ms behind: late
    arrivals[101] += 0.015  # 15 ms: within the bound
    del arrivals[150], ts[150]  # never arrived
    timing = frame_timing(arrivals, ts)
    assert (timing["late"], timing["lost"], timing["frames"]) == (1, 1, 199)
