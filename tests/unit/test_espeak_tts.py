"""Embedded espeak-ng TTS: real synthesis through the wheel's library."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest

from media_server.providers import espeak_tts
from media_server.providers.base import TextToSpeech
from media_server.providers.espeak_tts import EspeakTTS, split_sentences, synthesize_to_pcm
from media_server.types import AudioChunk, ProviderError

SHORT = "Hello, how can I help you today?"
LONG = (
    "Thank you for calling the clinic. I can book, move or cancel an appointment, "
    "and I can tell you our opening hours. We are open Monday to Friday from eight to six."
)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


async def collect(tts: EspeakTTS, text: str, voice: str = "en-us") -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text, voice)]


def seconds(chunks: list[AudioChunk]) -> float:
    return sum(len(c.data) for c in chunks) / 2 / chunks[0].sample_rate


@pytest.fixture
async def tts():
    engine = EspeakTTS()
    yield engine
    await engine.close()


def new_espeak_threads(since: set[threading.Thread]) -> int:
    """Live engine threads not in ``since`` (the run may share another provider's engine)."""
    return sum(1 for t in threading.enumerate() if t.name.startswith("espeak") and t not in since)


async def test_satisfies_protocol(tts: EspeakTTS) -> None:
    assert isinstance(tts, TextToSpeech)
    assert tts.name == "espeak"


async def test_synthesizes_plausible_speech(tts: EspeakTTS) -> None:
    chunks = await collect(tts, SHORT)
    assert chunks
    caps = tts.capabilities
    for chunk in chunks:
        assert (chunk.encoding, chunk.sample_rate, chunk.channels) == ("pcm", 22050, 1)
        assert (chunk.encoding, chunk.sample_rate) == (caps.encoding, caps.sample_rate)
        assert len(chunk.data) % 2 == 0
    pcm = b"".join(c.data for c in chunks)
    assert 0.5 < seconds(chunks) < 5.0
    assert rms(pcm) > 500  # speech, not silence (digital silence is 0)


async def test_streams_in_pieces_and_length_scales_with_text(tts: EspeakTTS) -> None:
    short = await collect(tts, "Hello.")
    long = await collect(tts, LONG)
    assert len(long) > 5  # streamed as the callback produces buffers, not one blob
    assert seconds(long) > 3 * seconds(short)
    assert 5.0 < seconds(long) < 20.0


async def test_empty_text_yields_nothing(tts: EspeakTTS) -> None:
    assert await collect(tts, "") == []
    assert await collect(tts, "   \n ") == []


async def test_voice_variants_and_unknown_voice_fallback(
    tts: EspeakTTS, caplog: pytest.LogCaptureFixture
) -> None:
    default = b"".join(c.data for c in await collect(tts, SHORT, "en-us"))
    female = b"".join(c.data for c in await collect(tts, SHORT, "en-us+f3"))
    assert female != default and rms(female) > 500

    with caplog.at_level(logging.WARNING, logger="media_server.providers.espeak_tts"):
        fallback = await collect(tts, SHORT, "EXAVITQu4vr4xnSDxMaL")  # an ElevenLabs id
        again = await collect(tts, SHORT, "EXAVITQu4vr4xnSDxMaL")
    warnings = [r for r in caplog.records if "unknown voice" in r.getMessage()]
    assert len(warnings) == 1  # warned once, not per sentence
    assert seconds(fallback) == pytest.approx(len(default) / 2 / 22050, rel=0.1)
    assert seconds(again) == pytest.approx(seconds(fallback), rel=0.1)


async def test_abandoned_stream_stops_and_engine_stays_usable(tts: EspeakTTS) -> None:
    text = " ".join([LONG] * 6)  # ~1 minute of speech
    full_pcm, rate = synthesize_to_pcm(text)
    before = espeak_tts._ENGINE.samples_produced
    stream = tts.synthesize(text, "en-us")
    first = await anext(stream)
    assert first.data
    await stream.aclose()
    await asyncio.sleep(0.05)
    produced = espeak_tts._ENGINE.samples_produced - before
    # Stopped within the first sentence, not after the whole minute.
    assert produced < len(full_pcm) / 2 / 4

    after = await collect(tts, SHORT)
    reference, _ = synthesize_to_pcm(SHORT)
    assert seconds(after) == pytest.approx(len(reference) / 2 / rate, rel=0.1)


async def test_cancelled_consumer_leaves_engine_usable(tts: EspeakTTS) -> None:
    async def slow_consumer() -> None:
        async for _chunk in tts.synthesize(" ".join([LONG] * 4), "en-us"):
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_consumer())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    chunks = await collect(tts, SHORT)
    assert 0.5 < seconds(chunks) < 5.0


async def test_sync_helper_runs_alongside_async_streams(tts: EspeakTTS) -> None:
    other = EspeakTTS()
    try:
        results = await asyncio.gather(
            collect(tts, LONG),
            collect(other, LONG, "en-us+m3"),
            asyncio.to_thread(synthesize_to_pcm, LONG),
            asyncio.to_thread(synthesize_to_pcm, SHORT, "en-us+f4"),
        )
    finally:
        await other.close()
    a, b, (pcm_long, rate), (pcm_short, _) = results
    assert rate == 22050
    for duration in (seconds(a), seconds(b), len(pcm_long) / 2 / rate):
        assert 5.0 < duration < 20.0
    assert 0.5 < len(pcm_short) / 2 / rate < 5.0
    assert rms(pcm_long) > 500


def test_synthesize_to_pcm_outside_any_loop() -> None:
    before = set(threading.enumerate())
    pcm, rate = synthesize_to_pcm("Testing one two three.")
    assert rate == 22050
    assert 0.5 < len(pcm) / 2 / rate < 5.0
    assert new_espeak_threads(before) == 0  # the helper leaves no engine thread behind


async def test_close_is_idempotent_and_releases_the_thread() -> None:
    before = set(threading.enumerate())
    held_elsewhere = any(t.name.startswith("espeak") for t in before)
    tts = EspeakTTS()
    # The provider holds the one engine thread from construction (or shares it).
    assert new_espeak_threads(before) == (0 if held_elsewhere else 1)
    await tts.warm_up()
    await collect(tts, SHORT)
    await tts.close()
    await tts.close()
    assert new_espeak_threads(before) == 0
    with pytest.raises(ProviderError) as err:
        await collect(tts, SHORT)
    assert err.value.stage == "tts"


def test_split_sentences() -> None:
    assert split_sentences("Hi there. How are you?  Fine!") == [
        "Hi there.",
        "How are you?",
        "Fine!",
    ]
    assert split_sentences("  ") == []
    long = "word " * 200
    pieces = split_sentences(long)
    assert all(len(p) <= 300 for p in pieces)
    assert " ".join(pieces).split() == long.split()
