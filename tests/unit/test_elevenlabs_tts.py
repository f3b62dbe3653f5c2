"""ElevenLabsTTS through real httpx against the loopback ElevenLabs fake."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable

import av
import pytest

from media_server.providers.elevenlabs_tts import ElevenLabsTTS
from media_server.types import AudioChunk, ProviderError
from tests.fakes.elevenlabs_fake import ElevenLabsFake, start_elevenlabs_fake
from tests.fakes.mp3_fixture import mp3_bytes, tone_pcm
from tests.fakes.providers import provider_factory

KEY = "xi-test-key-0123456789abcdef"
VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Thanks for calling, this is the front desk."


@pytest.fixture
async def fake() -> AsyncIterator[ElevenLabsFake]:
    server = await start_elevenlabs_fake(api_key=KEY, chunk_size=1024)
    yield server
    await server.close()


@pytest.fixture
async def make_tts(fake: ElevenLabsFake) -> AsyncIterator[Callable[..., ElevenLabsTTS]]:
    async with provider_factory(ElevenLabsTTS, api_key=KEY, base_url=fake.base_url) as make:
        yield make


async def collect(tts: ElevenLabsTTS, text: str = TEXT, voice: str = VOICE) -> list[AudioChunk]:
    return [c async for c in tts.synthesize(text, voice)]


def decoded_seconds(mp3: bytes) -> float:
    with av.open(io.BytesIO(mp3)) as container:
        samples, rate = 0, 1
        for frame in container.decode(audio=0):
            samples, rate = samples + frame.samples, frame.sample_rate
    return samples / rate


async def test_request_has_key_header_body_and_output_format(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    await collect(make_tts(stability=0.3, similarity_boost=0.9))
    [req] = fake.requests
    assert req.method == "POST"
    assert req.path == f"/v1/text-to-speech/{VOICE}/stream"
    assert req.query == {"output_format": "mp3_44100_128"}
    assert req.headers["xi-api-key"] == KEY
    assert req.headers["accept"] == "audio/mpeg"
    assert req.json == {
        "text": TEXT,
        "model_id": "eleven_flash_v2_5",
        "voice_settings": {"stability": 0.3, "similarity_boost": 0.9},
    }


async def test_model_and_output_format_are_configurable(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    chunks = await collect(make_tts(model="eleven_turbo_v2_5", output_format="mp3_22050_32"))
    assert fake.requests[0].json["model_id"] == "eleven_turbo_v2_5"
    assert fake.requests[0].query["output_format"] == "mp3_22050_32"
    assert b"".join(c.data for c in chunks) == mp3_bytes(1.0, 22050)


async def test_mp3_chunks_make_real_decodable_mp3(make_tts: Callable[..., ElevenLabsTTS]) -> None:
    # That chunks stream before the body is complete is in test_cloud_provider_contract.
    chunks = await collect(make_tts())
    assert len(chunks) > 1
    assert all(c.encoding == "mp3" for c in chunks)
    whole = b"".join(c.data for c in chunks)
    assert whole == mp3_bytes()
    assert decoded_seconds(whole) == pytest.approx(1.0, abs=0.1)


async def test_voice_id_is_escaped_into_one_path_segment(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    with contextlib.suppress(ProviderError):
        await collect(make_tts(), voice="../../v1/user")
    assert fake.requests[0].raw_path.startswith("/v1/text-to-speech/..%2F..%2Fv1%2Fuser/stream")


async def test_pcm_output_format_yields_sample_aligned_pcm(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.chunk_size = 999
    tts = make_tts(output_format="pcm_16000")
    chunks = await collect(tts)
    assert len(chunks) > 1
    caps = tts.capabilities
    for c in chunks:
        assert (c.encoding, c.sample_rate, c.channels) == ("pcm", 16000, 1)
        assert (c.encoding, c.sample_rate) == (caps.encoding, caps.sample_rate)
        assert len(c.data) % 2 == 0
    assert b"".join(c.data for c in chunks) == tone_pcm(1.0, 16000)
    assert fake.requests[0].headers["accept"] == "audio/pcm"


async def test_unsupported_output_format_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="output_format"):
        ElevenLabsTTS(api_key=KEY, output_format="ulaw_8000")


async def test_truncated_mp3_is_passed_on_as_received(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    # A clean end of a short body is not the provider's to judge; the decoder
    # plays what decodes.
    fake.knobs.truncate = True
    data = b"".join(c.data for c in await collect(make_tts()))
    assert 0 < len(data) < len(mp3_bytes())
    assert mp3_bytes().startswith(data)


async def test_unknown_voice_is_invalid_with_the_servers_reason(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.voices = {"someone-else"}
    with pytest.raises(ProviderError) as info:
        await collect(make_tts())
    assert info.value.kind == "invalid" and info.value.status == 404
    assert "voice_not_found" in str(info.value)


async def test_failures_clear_after_k_requests(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.fail_next(503, count=1)
    tts = make_tts()
    with pytest.raises(ProviderError):
        await collect(tts)
    assert await collect(tts)  # the retry turn.py would make succeeds
    assert [r.status for r in fake.requests] == [503, 200]


async def test_slow_but_steady_stream_is_not_a_timeout(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    # The timeout bounds each gap between chunks, not the whole body.
    fake.knobs.chunk_delay_s = 0.15
    fake.knobs.chunk_size = 2048  # 9 chunks: ~1.2 s in all, 0.15 s per gap
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks = await collect(make_tts(timeout_s=0.8))
    assert loop.time() - started > 0.8
    assert b"".join(c.data for c in chunks) == mp3_bytes()


async def test_latency_before_first_byte_is_waited_for(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.first_byte_delay_s = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = await anext(make_tts().synthesize(TEXT, VOICE))
    assert first.data and loop.time() - started >= 0.2
