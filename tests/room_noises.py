"""The room's noises and voices at 16 kHz, for the VAD tests and bench.listening
(no pytest here: a benchmark process imports it)."""

from __future__ import annotations

import numpy as np

RATE = 16000


def espeak_16k(text: str, voice: str = "en-us") -> bytes:
    from media_server.audio.pcm import PcmResampler
    from media_server.providers.espeak_tts import synthesize_to_pcm

    pcm, rate = synthesize_to_pcm(text, voice)
    resampler = PcmResampler(rate, 1, RATE)
    return resampler.convert(pcm) + resampler.flush()


def to_pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def dbfs(x: np.ndarray, level: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return x * (10 ** (level / 20) / rms)


def pink(seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(RATE * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
    return np.fft.irfft(spectrum, n)


def noises() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    t = np.arange(int(RATE * 4)) / RATE
    clicks = np.zeros_like(t)
    clicks[:: RATE // 7] = 1.0  # a keyboard-like tick train
    clicks = np.convolve(clicks, np.exp(-np.arange(80) / 8), "same") * rng.standard_normal(t.size)
    knocks = np.zeros_like(t)
    for start in (0.5, 1.3, 2.2, 3.1):
        i = int(start * RATE)
        knocks[i : i + 1600] = np.sin(2 * np.pi * 90 * t[:1600]) * np.exp(-t[:1600] * 40)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0, 523.3))
    beeps = np.where((t % 1.0) < 0.1, np.sin(2 * np.pi * 1000 * t), 0.0)  # the fake mic's
    hum = np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 150 * t)
    fan = np.convolve(rng.standard_normal(t.size), np.ones(40) / 40, "same")
    dishes = np.zeros_like(t)
    for start in (0.4, 0.9, 1.7, 2.3, 3.2):  # clinks: ringing partials, fast decay
        i, n = int(start * RATE), int(0.3 * RATE)
        ring = sum(np.sin(2 * np.pi * f * t[:n]) for f in (2100, 3400, 5200))
        dishes[i : i + n] += ring * np.exp(-t[:n] * 25)
    return {
        "pink noise": to_pcm(dbfs(pink(4, rng), -40)),
        "loud pink noise": to_pcm(dbfs(pink(4, rng), -20)),
        "mains hum": to_pcm(dbfs(hum, -30)),
        "fan": to_pcm(dbfs(fan, -30)),
        "keyboard": to_pcm(dbfs(clicks, -30)),
        "knocks": to_pcm(dbfs(knocks, -20)),
        "music chord": to_pcm(dbfs(chord * (1 + 0.3 * np.sin(2 * np.pi * 2 * t)), -25)),
        "beeps": to_pcm(dbfs(beeps, -20)),
        "dishes": to_pcm(dbfs(dishes, -25)),
    }
