"""OpenAITTS through the real openai SDK against the loopback OpenAI fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from media_server.providers.openai_tts import OpenAITTS
from media_server.types import AudioChunk, ProviderError
from tests.fakes.mp3_fixture import mp3_bytes, tone_pcm
from tests.fakes.openai_fake import OpenAIFake, start_openai_fake
from tests.fakes.providers import provider_factory

KEY = "sk-test-tts-0123456789abcdef"
TEXT = "Good morning, how can I help?"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await start_openai_fake(api_key=KEY, chunk_size=1024)
    yield server
    await server.close()


@pytest.fixture
async def make_tts(fake: OpenAIFake) -> AsyncIterator[Callable[..., OpenAITTS]]:
    async with provider_factory(OpenAITTS, api_key=KEY, base_url=fake.base_url) as make:
        yield make


async def collect(tts: OpenAITTS, text: str = TEXT, voice: str = "alloy") -> list[AudioChunk]:
    return [c async for c in tts.synthesize(text, voice)]


async def test_mp3_streams_real_mp3_in_chunks(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    chunks = await collect(make_tts(), voice="coral")
    assert len(chunks) > 1
    assert all(c.encoding == "mp3" for c in chunks)
    assert b"".join(c.data for c in chunks) == mp3_bytes(1.0, 24000)
    [req] = fake.requests
    assert req.path == "/v1/audio/speech"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json == {
        "model": "gpt-4o-mini-tts",
        "voice": "coral",
        "input": TEXT,
        "response_format": "mp3",
    }


@pytest.mark.parametrize("chunk_size", [1024, 1001])  # odd sizes split samples
async def test_pcm_is_24k_mono_and_sample_aligned(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS], chunk_size: int
) -> None:
    fake.knobs.chunk_size = chunk_size
    tts = make_tts(response_format="pcm", model="tts-1")
    chunks = await collect(tts)
    assert len(chunks) > 1
    caps = tts.capabilities
    for c in chunks:
        assert (c.encoding, c.sample_rate, c.channels) == ("pcm", 24000, 1)
        assert (c.encoding, c.sample_rate) == (caps.encoding, caps.sample_rate)
        assert len(c.data) % 2 == 0
    assert b"".join(c.data for c in chunks) == tone_pcm(1.0, 24000)
    assert fake.requests[0].json["response_format"] == "pcm"
    assert fake.requests[0].json["model"] == "tts-1"


async def test_pcm_as_octet_stream_is_accepted(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.content_type = "application/octet-stream"
    chunks = await collect(make_tts(response_format="pcm"))
    assert sum(len(c.data) for c in chunks) == len(tone_pcm(1.0, 24000))


async def test_unknown_response_format_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="response_format"):
        OpenAITTS(api_key=KEY, response_format="opus")


async def test_empty_pcm_is_bad_output(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.empty_body = True
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(response_format="pcm"))
    assert info.value.kind == "bad_output"
