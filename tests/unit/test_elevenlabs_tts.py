"""ElevenLabsTTS through real httpx against the loopback ElevenLabs fake."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import pytest

from media_server.providers.base import AudioChunk, ProviderError, TextToSpeech
from media_server.providers.elevenlabs_tts import ElevenLabsTTS
from tests.fakes.elevenlabs_fake import ElevenLabsFake, start_elevenlabs_fake
from tests.fakes.http_fake import wait_until
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


async def test_is_a_text_to_speech(make_tts: Callable[..., ElevenLabsTTS]) -> None:
    tts = make_tts()
    assert isinstance(tts, TextToSpeech)
    assert tts.name == "elevenlabs"


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


async def test_mp3_arrives_in_chunks_before_the_response_is_complete(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.hold_after_chunks = 1
    stream = make_tts().synthesize(TEXT, VOICE)
    first = await asyncio.wait_for(anext(stream), 3)
    rec = fake.requests[0]
    # The fake has sent one chunk and is waiting: playback could start now.
    assert rec.holding and rec.chunks_sent == 1 and not rec.finished
    assert first.encoding == "mp3"
    assert first.data == mp3_bytes()[:1024]
    fake.release()
    rest = [c async for c in stream]
    assert len(rest) >= 1
    whole = first.data + b"".join(c.data for c in rest)
    assert whole == mp3_bytes()
    assert rec.finished
    assert decoded_seconds(whole) == pytest.approx(1.0, abs=0.1)  # real, decodable MP3


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
    chunks = await collect(make_tts(output_format="pcm_16000"))
    assert len(chunks) > 1
    for c in chunks:
        assert (c.encoding, c.sample_rate, c.channels) == ("pcm", 16000, 1)
        assert len(c.data) % 2 == 0
    assert b"".join(c.data for c in chunks) == tone_pcm(1.0, 16000)
    assert fake.requests[0].headers["accept"] == "audio/pcm"


async def test_unsupported_output_format_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="output_format"):
        ElevenLabsTTS(api_key=KEY, output_format="ulaw_8000")


async def test_connection_is_kept_alive_between_sentences(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    tts = make_tts()
    for _ in range(3):
        await collect(tts)
    assert len(fake.requests) == 3
    assert fake.open_connections == 1


async def test_blank_text_makes_no_request(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    assert await collect(make_tts(), text="") == []
    assert fake.requests == []


async def test_truncated_mp3_is_passed_on_as_received(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    # A clean end of a short body is not the provider's to judge; the decoder
    # plays what decodes.
    fake.knobs.truncate = True
    data = b"".join(c.data for c in await collect(make_tts()))
    assert 0 < len(data) < len(mp3_bytes())
    assert mp3_bytes().startswith(data)


@pytest.mark.parametrize(
    ("knobs", "why"),
    [
        ({"content_type": "text/html", "body": b"<html>captive portal</html>"}, "html 200"),
        ({"content_type": "application/json", "body": b'{"detail": "x"}'}, "json 200"),
        ({"empty_body": True}, "zero bytes"),
        ({"body": b"<!DOCTYPE html><html></html>"}, "audio/mpeg that is not mp3"),
        ({"body": b"\xff"}, "one byte"),
    ],
)
async def test_non_audio_output_is_bad_output(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS], knobs: dict[str, Any], why: str
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


ERROR_TABLE = [
    (400, None, None, "invalid", False, None),
    (401, None, None, "auth", False, None),
    (401, None, "quota_exceeded", "quota", False, None),  # how ElevenLabs says "out of credit"
    (403, None, None, "auth", False, None),
    (404, None, None, "invalid", False, None),
    (422, None, None, "invalid", False, None),
    (402, None, None, "quota", False, None),
    (429, "4", None, "rate_limited", True, 4.0),
    (429, "Wed, 21 Oct 2015 07:28:00 GMT", None, "rate_limited", True, 0.0),  # a past date
    (500, None, None, "unavailable", True, None),
    (503, None, None, "unavailable", True, None),
]


@pytest.mark.parametrize(("status", "header", "code", "kind", "retryable", "after"), ERROR_TABLE)
async def test_http_errors_map_to_provider_errors(
    fake: ElevenLabsFake,
    make_tts: Callable[..., ElevenLabsTTS],
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
    assert len(fake.requests) == 1  # no retry inside the provider


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


async def test_wrong_key_never_appears_in_errors_or_logs(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-elevenlabs-key-must-not-leak"
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(api_key=wrong))
    err = info.value
    assert err.kind == "auth" and err.status == 401
    for text in (str(err), repr(err), caplog.text):
        assert wrong not in text
    assert err.__cause__ is None and err.__suppress_context__
    await collect(make_tts())
    assert KEY not in caplog.text


async def test_connection_reset_mid_body_is_unavailable(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.reset_after_chunks = 2
    got: list[AudioChunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in make_tts().synthesize(TEXT, VOICE):
            got.append(chunk)
    assert b"".join(c.data for c in got) == mp3_bytes()[:2048]
    assert info.value.kind == "unavailable" and info.value.retryable


async def test_connection_refused_is_unavailable(make_tts: Callable[..., ElevenLabsTTS]) -> None:
    closed = await start_elevenlabs_fake()
    url = closed.base_url
    await closed.close()
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(base_url=url))
    assert info.value.kind == "unavailable" and info.value.retryable


async def test_client_timeout_before_headers_is_timeout(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.hang = True
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(timeout_s=0.3))
    assert info.value.kind == "timeout" and info.value.retryable
    assert len(fake.requests) <= 1  # no retry (0 if the loop stalled)


async def test_client_timeout_mid_body_is_timeout(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.hold_after_chunks = 1
    with pytest.raises(ProviderError) as info:
        await collect(make_tts(timeout_s=0.3))
    assert info.value.kind == "timeout"


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


async def test_caller_deadline_while_hanging_closes_the_connection(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
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
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.hold_after_chunks = 2
    got: list[AudioChunk] = []

    async def consume() -> None:
        async for chunk in make_tts().synthesize(TEXT, VOICE):
            got.append(chunk)

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(got) == 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    rec = fake.requests[0]
    await wait_until(lambda: rec.disconnected)
    assert not rec.finished


async def test_closing_the_generator_closes_the_response(
    fake: ElevenLabsFake, make_tts: Callable[..., ElevenLabsTTS]
) -> None:
    fake.knobs.hold_after_chunks = 1
    stream = make_tts().synthesize(TEXT, VOICE)
    await anext(stream)
    await stream.aclose()  # barge-in: turn.py closes the stream
    # The fake sees the client leave (if the request got as far as its handler).
    await wait_until(
        lambda: fake.open_connections == 0 and all(r.disconnected for r in fake.requests)
    )
    assert len(fake.requests) <= 1


async def test_close_is_idempotent(make_tts: Callable[..., ElevenLabsTTS]) -> None:
    tts = make_tts()
    await tts.close()
    await tts.close()
