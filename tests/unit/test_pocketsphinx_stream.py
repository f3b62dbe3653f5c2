"""Streaming pocketsphinx: a turn decoded while it is spoken."""

from __future__ import annotations

import asyncio
import time

import pytest

from media_server.audio.pcm import PcmResampler
from media_server.providers.espeak_tts import synthesize_to_pcm
from media_server.providers.pocketsphinx_stt import PocketsphinxSTT
from media_server.types import Utterance


def speech_16k(text: str) -> bytes:
    pcm, rate = synthesize_to_pcm(text)
    resampler = PcmResampler(rate, 1, 16000)
    return resampler.convert(pcm) + resampler.flush()


@pytest.fixture
async def stt():
    engine = PocketsphinxSTT(max_streams=2)
    await engine.warm_up()
    yield engine
    await engine.close()


async def _stream_in_frames(stt: PocketsphinxSTT, pcm: bytes):
    stream = stt.open_stream()
    assert stream is not None
    for i in range(0, len(pcm), 640):  # 20 ms frames, as the segmenter hands them over
        stream.feed(pcm[i : i + 640])
    return stream


async def test_streamed_transcript_is_ready_far_sooner_than_a_batch_decode(stt):
    pcm = speech_16k("I would like to book an appointment for tomorrow morning please")
    stream = await _stream_in_frames(stt, pcm)
    # Let the decoder catch up, as it does while a person is still talking.
    await asyncio.sleep(len(pcm) / 32000)
    t0 = time.monotonic()
    streamed = await stream.finish()
    finish_s = time.monotonic() - t0
    t0 = time.monotonic()
    batch = await stt.transcribe(Utterance(pcm))
    batch_s = time.monotonic() - t0
    assert streamed.text and batch.text
    # Same audio, same engine: only the work left at the end of the turn differs.
    assert finish_s < 0.5 * batch_s, (finish_s, batch_s)


async def test_silence_streams_to_empty_text(stt):
    stream = await _stream_in_frames(stt, bytes(32000))
    assert (await stream.finish()).text == ""


async def test_pool_is_bounded_and_slots_come_back(stt):
    first, second = stt.open_stream(), stt.open_stream()
    assert first is not None and second is not None
    assert stt.open_stream() is None  # everyone is talking: fall back to batch
    first.cancel()
    third = stt.open_stream()
    assert third is not None
    third.feed(speech_16k("hello there"))
    assert (await third.finish()).text
    second.cancel()
    second.cancel()  # idempotent
    assert stt.open_stream() is not None


async def test_closed_engine_offers_no_stream():
    engine = PocketsphinxSTT(max_streams=1)
    await engine.close()
    assert engine.open_stream() is None
