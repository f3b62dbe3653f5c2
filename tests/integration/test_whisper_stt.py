"""The embedded Whisper recognizer on real synthetic speech (espeak-ng), end to end:
real model from its wheel, real decoding threads, the scripted agent reading what it heard.
One model for the module (it takes ~0.5 s to load). No timing thresholds."""

from __future__ import annotations

import asyncio
import functools

import pytest

from media_server.audio.pcm import PcmResampler
from media_server.providers.espeak_tts import synthesize_to_pcm
from media_server.providers.scripted.compose import compose_reply
from media_server.providers.whisper_stt import WhisperSTT
from media_server.types import ChatMessage, ProviderError, Utterance


def speech_16k(text: str, voice: str = "en-us") -> bytes:
    pcm, rate = synthesize_to_pcm(text, voice)
    resampler = PcmResampler(rate, 1, 16000)
    return resampler.convert(pcm) + resampler.flush()


@pytest.fixture(scope="module")
def whisper():
    stt = WhisperSTT(workers=1, max_waiting=1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(stt.warm_up())
    yield stt, loop
    loop.run_until_complete(stt.close())
    loop.close()


def hear(whisper, pcm: bytes, rate: int = 16000) -> str:
    stt, loop = whisper
    return loop.run_until_complete(stt.transcribe(Utterance(pcm=pcm, sample_rate=rate))).text


def test_it_hears_the_words_of_a_booking(whisper):
    words = hear(whisper, speech_16k("I need to cancel my appointment on Thursday")).lower()
    for word in ("cancel", "appointment", "thursday"):
        assert word in words, words


def test_other_rates_are_resampled(whisper):
    pcm, rate = synthesize_to_pcm("My name is David Miller.", "en")
    assert rate != 16000  # espeak's own rate: the provider must resample
    assert "david miller" in hear(whisper, pcm, rate).lower()


def test_silence_is_no_words(whisper):
    assert hear(whisper, bytes(2 * 16000)) == ""


def test_the_receptionist_understands_what_it_heard(whisper):
    heard = hear(whisper, speech_16k("Could I book a check up for next Monday?"))
    reply = compose_reply([ChatMessage("user", heard)], "receptionist")
    assert "Monday" in reply, (heard, reply)


def test_a_full_queue_refuses_at_once_and_the_next_turn_works(whisper):
    stt, loop = whisper
    pcm = speech_16k("What are your opening hours?")

    async def three_at_once():
        # one decoding + one waiting fill the provider; the third is refused
        return await asyncio.gather(
            *(stt.transcribe(Utterance(pcm=pcm)) for _ in range(3)), return_exceptions=True
        )

    results = loop.run_until_complete(three_at_once())
    refused = [r for r in results if isinstance(r, ProviderError)]
    assert len(refused) == 1 and refused[0].kind == "unavailable" and refused[0].retryable
    assert all("hours" in r.text.lower() for r in results if not isinstance(r, Exception))
    assert "hours" in hear(whisper, pcm).lower()


@pytest.fixture(scope="module")
def model():
    from media_server.providers.whisper_model import WhisperModel

    return WhisperModel(window_s=10.0, domain_prompt=True, beam=5)


@functools.cache
def _spoken(text: str) -> bytes:
    # espeak-ng's audio is not bit-identical from one synthesis to the next:
    # decodes that are compared must hear the same samples.
    return speech_16k(text)


def _decode(model, text: str, max_tokens: int, beam: int):
    import numpy as np

    from media_server.providers.whisper_model import log_mel
    from media_server.providers.whisper_numpy import NO_TIMESTAMPS, SOT

    samples = np.frombuffer(_spoken(text), dtype="<i2").astype(np.float32) / 32768
    numpy_model = model._numpy
    audio = numpy_model.encode(log_mel(samples, 1000))
    prompt = [*model._previous, SOT, NO_TIMESTAMPS]
    return numpy_model.decode(audio, prompt, max_tokens, model._suppress, beam=beam)


def test_the_beam_search_returns_text_tokens_only_and_stops_at_the_limit(model):
    from media_server.providers.whisper_numpy import EOT

    tokens, logprob, no_speech = _decode(model, "I forgot my password", 40, beam=5)
    assert tokens and all(t < EOT and t not in model._suppress for t in tokens)
    assert logprob < 0 and 0 <= no_speech < 0.5
    assert "password" in "".join(model._numpy.vocab[t] for t in tokens).lower()
    short, _, _ = _decode(model, "I forgot my password", 2, beam=5)
    assert len(short) == 2  # no end token yet: the best hypothesis still alive


def test_beam_and_greedy_agree_on_clear_words_and_the_beam_is_at_least_as_likely(model):
    greedy, greedy_lp, _ = _decode(model, "What are your opening hours?", 40, beam=1)
    beam, beam_lp, _ = _decode(model, "What are your opening hours?", 40, beam=5)
    assert "hours" in "".join(model._numpy.vocab[t] for t in beam).lower()
    # Ranked by mean log-probability: the beam's choice is never a worse guess.
    assert beam_lp / len(beam) >= greedy_lp / len(greedy) - 0.05
