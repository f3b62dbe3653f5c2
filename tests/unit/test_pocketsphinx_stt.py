"""Embedded PocketSphinx STT on real (espeak-ng) speech.

PocketSphinx is poor on espeak's synthetic voices ("book an appointment for
tomorrow morning" may come back as "look for tomorrow morning he"), so these
tests assert that speech gives a non-empty transcript, never exact words.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import av
import numpy as np
import pytest

from media_server.providers.base import SpeechToText
from media_server.providers.espeak_tts import synthesize_to_pcm
from media_server.providers.pocketsphinx_stt import PocketsphinxSTT
from media_server.types import ProviderError, Utterance

SENTENCE = "Book an appointment for tomorrow morning."


def to_16k(pcm: bytes, rate: int) -> bytes:
    """s16 mono at ``rate`` -> 16 kHz through PyAV, as the inbound path does."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    frame = av.AudioFrame.from_ndarray(
        np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = rate
    out = [f.to_ndarray().tobytes() for f in resampler.resample(frame)]
    out += [f.to_ndarray().tobytes() for f in resampler.resample(None)]
    return b"".join(out)


@pytest.fixture(scope="module")
def speech() -> tuple[bytes, int]:
    """The sentence as espeak-ng speech at its native 22,050 Hz."""
    pcm, rate = synthesize_to_pcm(SENTENCE)
    return pcm, rate


@pytest.fixture(scope="module")
def speech_16k(speech: tuple[bytes, int]) -> bytes:
    pcm = to_16k(*speech)
    assert 1.0 < len(pcm) / 2 / 16000 < 5.0
    return pcm


@pytest.fixture
async def stt():
    engine = PocketsphinxSTT()
    yield engine
    await engine.close()


async def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def stt_threads(
    since: set[threading.Thread] | frozenset[threading.Thread] = frozenset(),
    prefix: str = "pocketsphinx_",
) -> int:
    """Live batch-decoder threads not in ``since`` (the run may share another
    provider's); ``prefix="pocketsphinx"`` counts the streaming pool's too."""
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix) and t not in since)


async def test_satisfies_protocol() -> None:
    stt = PocketsphinxSTT()
    assert isinstance(stt, SpeechToText)
    assert stt.name == "pocketsphinx"
    await stt.close()


async def test_speech_gives_a_transcript(stt: PocketsphinxSTT, speech_16k: bytes) -> None:
    transcript = await stt.transcribe(Utterance(speech_16k))
    assert transcript.text.strip()
    assert transcript.text == transcript.text.strip()
    assert "<" not in transcript.text and "[" not in transcript.text  # no filler tokens
    assert transcript.language == "en"


async def test_digital_silence_and_empty_input_give_empty_text(stt: PocketsphinxSTT) -> None:
    # Left to itself the decoder "hears" a word in digital silence; we must not.
    assert (await stt.transcribe(Utterance(bytes(32000)))).text == ""
    assert (await stt.transcribe(Utterance(b""))).text == ""
    assert (await stt.transcribe(Utterance(b"\x01"))).text == ""  # odd byte count
    assert stt.decoder_loads == 0  # silence is answered without waking the decoder


async def test_decoder_is_created_once(stt: PocketsphinxSTT, speech_16k: bytes) -> None:
    assert stt.decoder_loads == 0  # lazy: nothing loaded at construction
    await stt.warm_up()
    assert stt.decoder_loads == 1
    for _ in range(2):
        assert (await stt.transcribe(Utterance(speech_16k))).text
    await stt.warm_up()
    assert stt.decoder_loads == 1


async def test_lazy_creation_without_warm_up(stt: PocketsphinxSTT, speech_16k: bytes) -> None:
    assert (await stt.transcribe(Utterance(speech_16k))).text
    assert stt.decoder_loads == 1


async def test_concurrent_calls_both_complete(speech_16k: bytes) -> None:
    before = set(threading.enumerate())
    stt = PocketsphinxSTT()
    try:
        first, second = await asyncio.gather(
            stt.transcribe(Utterance(speech_16k)), stt.transcribe(Utterance(speech_16k))
        )
        assert first.text and second.text
        assert stt.decoder_loads == 1
        assert stt_threads(before) == 1  # one decoder thread; the calls queued on it
    finally:
        await stt.close()


async def test_other_sample_rates_are_resampled(
    stt: PocketsphinxSTT, speech: tuple[bytes, int]
) -> None:
    pcm, rate = speech
    assert (await stt.transcribe(Utterance(pcm, sample_rate=rate))).text


async def test_engine_failure_becomes_provider_error(
    stt: PocketsphinxSTT, speech_16k: bytes
) -> None:
    class BrokenDecoder:
        def start_utt(self) -> None:
            raise RuntimeError("decoder state is broken")

    stt._decoder = BrokenDecoder()
    with pytest.raises(ProviderError) as err:
        await stt.transcribe(Utterance(speech_16k))
    assert (err.value.stage, err.value.kind) == ("stt", "bad_output")


async def test_close_is_idempotent_and_releases_the_thread(speech_16k: bytes) -> None:
    before = set(threading.enumerate())
    stt = PocketsphinxSTT()
    assert stt_threads(before) == 1  # started with the provider, before any call
    await stt.transcribe(Utterance(speech_16k))
    await stt.close()
    await stt.close()
    assert stt_threads(before, prefix="pocketsphinx") == 0  # batch and streaming threads
    with pytest.raises(ProviderError) as err:
        await stt.transcribe(Utterance(speech_16k))
    assert err.value.stage == "stt"


async def test_close_stops_decodes_in_progress_and_queued(speech_16k: bytes) -> None:
    before = set(threading.enumerate())
    stt = PocketsphinxSTT()
    running = asyncio.create_task(stt.transcribe(Utterance(speech_16k)))
    queued = asyncio.create_task(stt.transcribe(Utterance(speech_16k)))
    await wait_for(lambda: stt.decoder_loads > 0)  # the first call is on the decoder thread
    await stt.close()
    assert stt_threads(before) == 0
    results = await asyncio.gather(running, queued, return_exceptions=True)
    assert all(isinstance(r, ProviderError) and r.stage == "stt" for r in results), results


async def test_cancelled_call_stops_decoding_early(stt: PocketsphinxSTT, speech_16k: bytes) -> None:
    long = speech_16k * 10  # ~20 s of speech: seconds of decoding
    task = asyncio.create_task(stt.transcribe(Utterance(long)))
    await wait_for(lambda: stt.samples_decoded > 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The decoder thread is free again soon: the next call completes ...
    assert (await stt.transcribe(Utterance(speech_16k))).text
    # ... and the abandoned one stopped long before its end.
    assert stt.samples_decoded < len(long) // 2
