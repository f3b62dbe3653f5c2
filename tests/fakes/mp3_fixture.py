"""Real audio for the fakes: PCM tones and MP3 bytes encoded with PyAV (libmp3lame).

A harmonic tone (f0 ~150 Hz plus harmonics) reads as speech to webrtcvad and
decodes like speech through the MP3 path, so it is the default. Real speech
comes from espeak-ng when ``media_server.providers.espeak_tts`` offers
``synthesize_to_pcm(text, voice) -> (pcm, sample_rate)``; callers ask for it
with ``speech_text`` and fall back to the tone when it is not there.
"""

from __future__ import annotations

import functools
import io

import av
import numpy as np


def tone_pcm(seconds: float = 1.0, sample_rate: int = 24000, f0: float = 150.0) -> bytes:
    """s16le mono harmonic tone with a gentle envelope (no clicks at the ends)."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave = sum((0.5 / k) * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6))
    ramp = min(n // 2, int(0.01 * sample_rate)) or 1
    env = np.ones(n)
    env[:ramp] = np.linspace(0.0, 1.0, ramp)
    env[-ramp:] = np.linspace(1.0, 0.0, ramp)
    return (wave * env * 0.5 * 32767).astype("<i2").tobytes()


def speech_pcm(text: str) -> tuple[bytes, int] | None:
    """espeak-ng speech if the embedded TTS module provides it, else None."""
    try:
        from media_server.providers.espeak_tts import synthesize_to_pcm  # type: ignore[attr-defined]

        pcm, rate = synthesize_to_pcm(text)
    except Exception:  # not written yet, no voice data, ...: the tone will do
        return None
    return (bytes(pcm), int(rate)) if pcm else None


def encode_mp3(
    pcm: bytes, sample_rate: int, bitrate: int = 128_000, out_rate: int = 44100
) -> bytes:
    """Encode s16le mono PCM to an MP3 byte string (a real MPEG-1/2 layer III stream)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as container:
        stream = container.add_stream("mp3", rate=out_rate)
        stream.bit_rate = bitrate
        stream.layout = "mono"
        resampler = av.AudioResampler(format="s16p", layout="mono", rate=out_rate)
        samples = np.frombuffer(pcm, dtype="<i2")
        step = sample_rate // 10  # 100 ms per input frame
        pts = 0
        for start in range(0, len(samples), step):
            chunk = samples[start : start + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += len(chunk)
            for out in resampler.resample(frame):
                container.mux(stream.encode(out))
        for out in resampler.resample(None):
            container.mux(stream.encode(out))
        container.mux(stream.encode(None))
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def mp3_bytes(seconds: float = 1.0, out_rate: int = 44100, speech_text: str | None = None) -> bytes:
    """Cached MP3 of the tone (or of ``speech_text`` via espeak-ng when available)."""
    spoken = speech_pcm(speech_text) if speech_text else None
    pcm, rate = spoken if spoken else (tone_pcm(seconds, 24000), 24000)
    return encode_mp3(pcm, rate, out_rate=out_rate)


def looks_like_mp3(data: bytes) -> bool:
    """An ID3 tag or an MPEG audio frame sync (11 set bits) at the start."""
    return data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
