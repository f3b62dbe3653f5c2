"""OpenAITTS through the real openai SDK against the loopback OpenAI fake."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from media_server.providers.base import AudioChunk, ProviderError, TextToSpeech
from media_server.providers.openai_tts import OpenAITTS
from tests.fakes.http_fake import wait_until
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


async def test_is_a_text_to_speech(make_tts: Callable[..., OpenAITTS]) -> None:
    tts = make_tts()
    assert isinstance(tts, TextToSpeech)
    assert tts.name == "openai"


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
    chunks = await collect(make_tts(response_format="pcm", model="tts-1"))
    assert len(chunks) > 1
    for c in chunks:
        assert (c.encoding, c.sample_rate, c.channels) == ("pcm", 24000, 1)
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


async def test_first_chunk_arrives_before_the_rest_is_sent(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.hold_after_chunks = 1
    stream = make_tts().synthesize(TEXT, "alloy")
    first = await asyncio.wait_for(anext(stream), 3)
    assert first.data == mp3_bytes(1.0, 24000)[:1024]
    assert fake.requests[0].holding
    fake.release()
    rest = [c async for c in stream]
    assert first.data + b"".join(c.data for c in rest) == mp3_bytes(1.0, 24000)


async def test_unknown_response_format_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="response_format"):
        OpenAITTS(api_key=KEY, response_format="opus")


async def test_blank_text_makes_no_request(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    assert await collect(make_tts(), text="  ") == []
    assert fake.requests == []


@pytest.mark.parametrize(
    ("knobs", "why"),
    [
        ({"content_type": "text/html", "body": b"<html>login</html>"}, "html page"),
        ({"content_type": "application/json", "body": b'{"ok": true}'}, "json"),
        ({"empty_body": True}, "zero bytes"),
        ({"body": b"<html>not audio at all</html>"}, "audio/mpeg that is not mp3"),
    ],
)
async def test_non_audio_output_is_bad_output(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS], knobs: dict[str, Any], why: str
) -> None:
    for name, value in knobs.items():
        setattr(fake.knobs, name, value)
    with pytest.raises(ProviderError) as info:
        await collect(make_tts())
    assert (info.value.stage, info.value.kind, info.value.retryable) == (
        "tts",
        "bad_output",
        False,
    ), why


async def test_empty_pcm_is_bad_output(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.empty_body = True
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(response_format="pcm"))
    assert info.value.kind == "bad_output"


ERROR_TABLE = [
    (400, None, None, "invalid", False, None),
    (401, None, None, "auth", False, None),
    (403, None, None, "auth", False, None),
    (404, None, None, "invalid", False, None),
    (422, None, None, "invalid", False, None),
    (402, None, None, "quota", False, None),
    (429, "1.5", None, "rate_limited", True, 1.5),
    (429, None, "insufficient_quota", "quota", False, None),
    (500, None, None, "unavailable", True, None),
    (503, None, None, "unavailable", True, None),
]


@pytest.mark.parametrize(("status", "header", "code", "kind", "retryable", "after"), ERROR_TABLE)
async def test_http_errors_map_to_provider_errors(
    fake: OpenAIFake,
    make_tts: Callable[..., OpenAITTS],
    status: int,
    header: str | None,
    code: str | None,
    kind: str,
    retryable: bool,
    after: float | None,
) -> None:
    fake.fail_next(status, count=-1, retry_after=header, code=code)
    with pytest.raises(ProviderError) as info:
        await collect(make_tts())
    err = info.value
    assert (err.stage, err.kind, err.retryable, err.status) == ("tts", kind, retryable, status)
    assert err.retry_after == after
    assert len(fake.requests) == 1  # max_retries=0


async def test_wrong_key_never_appears_in_errors_or_logs(
    make_tts: Callable[..., OpenAITTS], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-tts-key-that-must-not-leak"
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(api_key=wrong))
    assert info.value.kind == "auth"
    for text in (str(info.value), repr(info.value), caplog.text):
        assert wrong not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_connection_reset_mid_body_is_unavailable(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.reset_after_chunks = 2
    got: list[AudioChunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in make_tts().synthesize(TEXT, "alloy"):
            got.append(chunk)
    assert got  # audio before the reset was passed on
    assert info.value.kind == "unavailable" and info.value.retryable


async def test_sdk_timeout_is_timeout(fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]) -> None:
    fake.knobs.hang = True
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(timeout_s=0.3))
    assert info.value.kind == "timeout"
    assert len(fake.requests) <= 1  # no retry (0 if the loop stalled)


async def test_sdk_timeout_mid_body_is_timeout(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.hold_after_chunks = 1
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(timeout_s=0.3))
    assert info.value.kind == "timeout"


async def test_caller_deadline_while_hanging_closes_the_connection(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.hang = True
    tts = make_tts()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await collect(tts)
    # The fake sees the client leave (if the request got as far as its handler).
    await wait_until(
        lambda: fake.open_connections == 0 and all(r.disconnected for r in fake.requests)
    )
    assert len(fake.requests) <= 1


async def test_cancelling_mid_stream_closes_the_response(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.hold_after_chunks = 2
    got: list[AudioChunk] = []

    async def consume() -> None:
        async for chunk in make_tts().synthesize(TEXT, "alloy"):
            got.append(chunk)

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(got) == 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await wait_until(lambda: fake.requests[0].disconnected)
    assert not fake.requests[0].finished


async def test_closing_the_generator_closes_the_response(
    fake: OpenAIFake, make_tts: Callable[..., OpenAITTS]
) -> None:
    fake.knobs.hold_after_chunks = 1
    stream = make_tts().synthesize(TEXT, "alloy")
    await anext(stream)
    await stream.aclose()
    await wait_until(lambda: fake.requests[0].disconnected)


async def test_close_is_idempotent(make_tts: Callable[..., OpenAITTS]) -> None:
    tts = make_tts()
    await tts.close()
    await tts.close()
