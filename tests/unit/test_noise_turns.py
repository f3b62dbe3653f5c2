"""Noise never reaches speech-to-text, and speech in noise reaches it trimmed:
the listener (Silero, as the session runs it) on an exact clock."""

from __future__ import annotations

import numpy as np
import pytest

from media_server.listening.decisions import PauseHeard, TurnEnded
from media_server.listening.listener import Listener
from media_server.listening.segmenter import SegmenterConfig
from media_server.listening.vad import SileroPool, screened_silero
from tests.room_noises import RATE, dbfs, espeak_16k, noises, pink, to_pcm

FRAME = 640
POOL = SileroPool()


def listen(pcm: bytes) -> list:
    """Every decision that hands audio to STT (an ended turn, a pause's
    speculative transcription), with the agent quiet."""
    vad = screened_silero(0.5, 2)
    vad.attach(POOL.acquire())
    listener = Listener(SegmenterConfig(), is_speech=vad.is_speech, barge_in_min_ms=200)
    out = []
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        for d in listener.feed(pcm[i : i + FRAME], (i + FRAME) / (2 * RATE), agent_has_floor=False):
            if isinstance(d, TurnEnded | PauseHeard):
                out.append(d)
    POOL.release(vad.detach())
    return out


@pytest.mark.parametrize("name", list(noises()))
def test_no_noise_reaches_speech_to_text(name: str):
    assert listen(noises()[name] + bytes(RATE * 2)) == []


def test_speech_in_steady_noise_at_10_db_snr_is_one_turn_trimmed_to_the_speech():
    words = np.frombuffer(espeak_16k("I would like to book a table for two tonight."), "<i2")
    speech = words.astype(np.float64) / 32768
    level = 20 * np.log10(float(np.sqrt(np.mean(speech**2))))
    pad = np.zeros(int(2.0 * RATE))
    clean = np.concatenate([pad, speech, pad])
    noisy = clean + dbfs(pink(clean.size / RATE, np.random.default_rng(4)), level - 10)
    [turn] = [d for d in listen(to_pcm(noisy)) if isinstance(d, TurnEnded)]
    heard_s = len(turn.utterance.pcm) / 2 / RATE
    # The speech, its pre-roll (300 ms) and tail (200 ms); not the 4 s of noise around it.
    assert speech.size / RATE - 0.3 < heard_s < speech.size / RATE + 0.8
