"""Synthetic audio for tests: deterministic, no files, no network.

All PCM here is 16-bit little-endian (s16le). Mono unless a name says otherwise.

What webrtcvad thinks of these signals (measured, see AIORTC-NOTES.md):

* ``speech_like()`` - a harmonic tone, f0 ~150 Hz with decaying harmonics -
  reads as speech in every aggressiveness mode.
* ``silence()`` - digital zeros - never reads as speech.
* White noise reads as speech in modes 0-2, so there is deliberately no
  "noise" helper to be mistaken for silence.

``speech_48k()`` is real speech (espeak-ng, deterministic, offline) at the
mic track's rate. This module is plain: the benchmarks import it too, so it
must not become a fixtures module (tests/conftest.py re-exports from here).

Example::

    from tests.audio_fixtures import speech_like, silence
    pcm = silence(0.5) + speech_like(1.0) + silence(0.8)   # 16 kHz mono
"""

from __future__ import annotations

import fractions
import functools
import io

import av
import numpy as np

S16_MAX = 32767


def _to_pcm(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] -> s16le bytes."""
    clipped = np.clip(samples, -1.0, 1.0)
    return (clipped * S16_MAX).astype("<i2").tobytes()


def silence(duration_s: float, rate: int = 16000, channels: int = 1) -> bytes:
    """Digital silence (all-zero samples)."""
    return bytes(round(duration_s * rate) * 2 * channels)


@functools.cache
def speech_48k(text: str, voice: str = "en-us") -> bytes:
    """espeak-ng speech as 48 kHz mono s16le, the rate of the mic track."""
    from media_server.audio.pcm import PcmResampler
    from media_server.providers.espeak_tts import synthesize_to_pcm

    pcm, rate = synthesize_to_pcm(text, voice)
    resampler = PcmResampler(rate, 1, 48000)
    return resampler.convert(pcm) + resampler.flush()


def sine(duration_s: float, freq: float, rate: int = 16000, amplitude: float = 0.5) -> bytes:
    """A pure sine tone; handy for checking that a frequency survives resampling."""
    t = np.arange(round(duration_s * rate)) / rate
    return _to_pcm(amplitude * np.sin(2 * np.pi * freq * t))


def speech_like(
    duration_s: float,
    rate: int = 16000,
    f0: float = 150.0,
    amplitude: float = 0.3,
    harmonics: int = 10,
) -> bytes:
    """A voiced-speech stand-in: f0 plus harmonics with 1/k amplitudes.

    webrtcvad classifies every 20 ms frame of this as speech in modes 0-3
    (checked for 40 s). Keep ``amplitude`` at or below ~0.3: in mode 3 a
    louder stationary tone is taken for background after ~80 ms (measured at
    0.5). Peak amplitude is ``amplitude`` of full scale.

    webrtcvad smooths its decisions: after the tone stops it keeps saying
    "speech" for 4-8 more 20 ms frames (mode-dependent).
    """
    t = np.arange(round(duration_s * rate)) / rate
    x = np.zeros_like(t)
    for k in range(1, harmonics + 1):
        if k * f0 >= rate / 2:  # stay below Nyquist: no aliasing
            break
        x += np.sin(2 * np.pi * k * f0 * t) / k
    peak = float(np.max(np.abs(x))) if x.size else 1.0
    return _to_pcm(amplitude * x / peak)


def to_stereo(pcm: bytes) -> bytes:
    """Duplicate a mono signal into interleaved stereo (L R L R ...)."""
    mono = np.frombuffer(pcm, dtype="<i2")
    return np.repeat(mono, 2).tobytes()


def chunks(pcm: bytes, size: int) -> list[bytes]:
    """Split bytes into pieces of ``size`` (the last one may be shorter)."""
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def audio_frames(
    pcm: bytes,
    rate: int = 48000,
    channels: int = 2,
    samples_per_frame: int = 960,
) -> list[av.AudioFrame]:
    """Packed s16 frames as aiortc's Opus decoder hands them out.

    ``pcm`` must already be interleaved for ``channels``. pts counts samples
    with time_base 1/rate, like RTP timestamps.
    """
    layout = "stereo" if channels == 2 else "mono"
    samples = np.frombuffer(pcm, dtype="<i2")
    step = samples_per_frame * channels
    frames = []
    for i, start in enumerate(range(0, len(samples) - step + 1, step)):
        chunk = samples[start : start + step].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
        frame.sample_rate = rate
        frame.pts = i * samples_per_frame
        frame.time_base = fractions.Fraction(1, rate)
        frames.append(frame)
    return frames


def dominant_frequency(pcm: bytes, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of a mono s16le signal."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def rms_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS of s16le samples (-inf for digital silence)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    if x.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(x * x)))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def encode_mp3(pcm: bytes, rate: int = 44100, bitrate: int = 64000) -> bytes:
    """Encode mono s16le PCM to an MP3 byte stream (with an ID3 tag, like many servers)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        stream.bit_rate = bitrate
        samples = np.frombuffer(pcm, dtype="<i2")
        frame_size = 1152  # one MPEG-1 Layer III frame
        for start in range(0, len(samples), frame_size):
            chunk = samples[start : start + frame_size].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = fractions.Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
