"""The voice activity detectors on voices and on the room's noises.

Silero must hear a voice (espeak-ng, several voices, also at 10 dB SNR over
noise) and none of the noises that webrtcvad takes for speech; what
"hearing" means for a turn is the segmenter's (a run of voiced frames).
"""

from __future__ import annotations

import numpy as np
import pytest

from media_server.listening.segmenter import Segmenter, SegmenterConfig, SpeechStarted
from media_server.listening.vad import SileroPool, SileroVad, WebrtcVad
from tests.audio_fixtures import silence
from tests.room_noises import RATE, dbfs, espeak_16k, noises, pink, to_pcm

FRAME = 640
POOL = SileroPool()


def silero(screened: bool = False) -> SileroVad:
    """The model alone, or screened by webrtcvad as the session runs it."""
    vad = SileroVad(prefilter=WebrtcVad(2).is_speech if screened else None)
    vad.attach(POOL.acquire())
    return vad


def starts(pcm: bytes, is_speech) -> int:
    seg = Segmenter(SegmenterConfig(silence_ms=500), is_speech=is_speech)
    events = []
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        events += seg.feed(pcm[i : i + FRAME], (i + FRAME) / (2 * RATE))
    return sum(isinstance(e, SpeechStarted) for e in events)


def voiced_share(pcm: bytes, vad) -> float:
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    return sum(vad.is_speech(f) for f in frames) / len(frames)


@pytest.mark.parametrize("screened", [False, True])
@pytest.mark.parametrize("name", list(noises()))
def test_silero_starts_no_turn_on_noise(name: str, screened: bool):
    vad = silero(screened)
    assert starts(noises()[name], vad.is_speech) == 0, name
    POOL.release(vad.detach())


def test_webrtcvad_takes_steady_noise_for_speech():
    # Why Silero is the default: the same pink noise starts turns here.
    assert starts(noises()["pink noise"], WebrtcVad(2).is_speech) > 0


@pytest.mark.parametrize("screened", [False, True])
@pytest.mark.parametrize("voice", ["en-us", "en", "en-us+f3"])
def test_silero_hears_voices_alone_and_over_noise(voice: str, screened: bool):
    words = espeak_16k("I would like to book an appointment for next Tuesday.", voice)
    speech = np.frombuffer(words, "<i2").astype(np.float64) / 32768
    vad = silero(screened)
    assert voiced_share(words, vad) > 0.6
    assert starts(silence(0.5) + words + silence(1.0), vad.is_speech) == 1
    # 10 dB SNR over steady noise: still one turn.
    rms = float(np.sqrt(np.mean(speech**2)))
    level = 20 * np.log10(rms)
    noisy = speech + dbfs(pink(speech.size / RATE, np.random.default_rng(1)), level - 10)
    assert starts(silence(0.5) + to_pcm(noisy) + silence(1.0), silero(screened).is_speech) == 1
    POOL.release(vad.detach())


def test_a_detector_without_its_model_hears_nothing_and_frames_of_any_size_work():
    vad = SileroVad()
    words = espeak_16k("Hello there, how are you today?")
    assert voiced_share(words, vad) == 0.0
    vad.attach(POOL.acquire())
    # 20 ms frames and odd pieces give the same states: windows are 32 ms.
    frames = [words[i : i + 666] for i in range(0, len(words) - 666, 666)]
    assert sum(vad.is_speech(f) for f in frames) > len(frames) // 2
    POOL.release(vad.detach())


def test_the_pool_loads_once_and_resets_what_it_reuses():
    loads, resets = [], []

    class Model:
        def reset(self) -> None:
            resets.append(self)

    pool = SileroPool(keep=1, load=lambda: loads.append(Model()) or loads[-1])
    first = pool.acquire()
    pool.release(first)
    assert pool.acquire() is first and len(loads) == 1 and resets == [first]
    second, third = pool.acquire(), pool.acquire()
    pool.release(second)
    pool.release(third)  # over ``keep``: dropped
    assert pool.loaded == 3 and pool.acquire() is second


def test_quiet_windows_skip_the_model_and_are_not_speech():
    vad = silero()
    frames = [silence(0.02)] * 50 + [bytes(np.full(320, 3, "<i2").tobytes())] * 50
    assert not any(vad.is_speech(f) for f in frames)
    assert vad.skipped == 2 * 50 * 320 // 512
    words = espeak_16k("Hello there, how are you today?")
    assert voiced_share(words, vad) > 0.5  # the model still hears what is loud enough
    POOL.release(vad.detach())


def test_the_screen_keeps_the_model_off_while_nobody_speaks():
    vad = silero(screened=True)
    rng = np.random.default_rng(3)
    room = to_pcm(dbfs(rng.standard_normal(RATE * 2), -50))  # audible, not speech-like to it
    frames = [room[i : i + FRAME] for i in range(0, len(room), FRAME)]
    screen = WebrtcVad(2)
    screened_out = sum(not screen.is_speech(f) for f in frames)
    assert screened_out > len(frames) // 2
    for f in frames:
        vad.is_speech(f)
    windows = len(room) // 2 // 512
    assert vad.skipped >= windows * screened_out // len(frames) - 2
    POOL.release(vad.detach())
