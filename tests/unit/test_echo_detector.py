"""The echo detector on synthetic signals: an echo comes back at one steady
delay; a voice that merely resembles the agent's correlates at delays that
wander, and must not switch the canceller on for the rest of the call."""

from __future__ import annotations

import numpy as np

from media_server.echo.detector import EchoDetector, echo_correlation

RATE = 16000


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 4000).astype(np.int16)


def look(detector: EchoDetector, played: np.ndarray, end: int, delay_s: float) -> str:
    """The microphone's last window, ending at sample ``end``, holds what was
    played ``delay_s`` earlier, 12 dB down."""
    shift = int(delay_s * RATE)
    near = (played[end - detector.window - shift : end - shift] // 4).astype(np.int16)
    reference = played[end - detector.window - detector.lookback : end]
    return detector.judge(near, reference)


def test_the_correlation_finds_the_delay_of_the_echo():
    played = noise(2.0, 1)
    near = played[16000 - 8000 - 1600 : 16000 - 1600] // 4
    score, delay = echo_correlation(near, played[16000 - 16000 : 16000])
    assert score > 0.9 and abs(delay - 0.1) < 0.001


def test_an_echo_at_a_steady_delay_is_found_at_the_second_look():
    played, detector = noise(3.0, 2), EchoDetector()
    assert look(detector, played, 20000, 0.08) == "unknown"  # one look is not enough
    assert look(detector, played, 24000, 0.08) == "found"


def test_correlations_at_wandering_delays_are_not_an_echo():
    played, detector = noise(4.0, 3), EchoDetector()
    for n, delay in enumerate([0.05, 0.2, 0.1, 0.35, 0.02]):
        assert look(detector, played, 20000 + n * 4000, delay) != "found"
