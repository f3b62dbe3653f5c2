"""What every cloud provider promises the turn policy, checked once for all of them.

Each test runs per provider, through the real client stack (the openai SDK,
or httpx for ElevenLabs) against the loopback fakes in tests/fakes. A
``Cloud`` says how to start a provider's fake, build the provider and make
one request; the few ways vendors really differ (how they say "out of
credit", which request is a stream) are its fields. What is particular to one
provider (request shape, parsing, format details) stays in its own
test_<provider>.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from media_server.providers.base import LanguageModel, SpeechToText, TextToSpeech
from media_server.providers.elevenlabs_tts import ElevenLabsTTS
from media_server.providers.openai_llm import OpenAILLM
from media_server.providers.openai_stt import OpenAISTT
from media_server.providers.openai_tts import OpenAITTS
from media_server.types import (
    ChatMessage,
    ProviderError,
    ReplyOptions,
    Stage,
    Transcript,
    Utterance,
)
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.http_fake import FakeServer, split_bytes, wait_until
from tests.fakes.mp3_fixture import mp3_bytes, tone_pcm
from tests.fakes.openai_fake import DEFAULT_REPLY, OpenAIKnobs, start_openai_fake, tokens_of
from tests.fakes.providers import provider_factory

# Small audio chunks, so a held or reset body stops with most of the answer unsent.
CHUNK = 1024

TEXT = "Thanks for calling, this is the front desk."
MESSAGES = [ChatMessage("user", "Hi, do you have a room tonight?")]
ELEVENLABS_VOICE = "21m00Tcm4TlvDq8ikWAM"
UTTERANCE = Utterance(tone_pcm(1.0, 16000), sample_rate=16000, peak_dbfs=-12.0)


@dataclass(frozen=True)
class Cloud:
    """One cloud provider, as the contract tests drive it."""

    id: str
    stage: Stage
    protocol: type
    """What the pipeline takes the provider for at this stage."""
    name: str
    provider: Callable[..., Any]
    start_fake: Callable[..., Awaitable[FakeServer]]
    key: str
    wrong_key: str
    request: Callable[[Any], AsyncGenerator[Any, None]]
    """One request (TTS: in ``voice``): the provider's own stream (closing it is
    what turn.py does on barge-in), or for STT a stream of its one transcript."""
    part: Callable[[Any], Any]
    """The content of one streamed item (audio bytes, a delta, a transcript's text)."""
    parts: Callable[[], list[Any]]
    """The fake's default answer, part by part as the fake sends it."""
    out_of_credit: tuple[int, str]
    """The status and error code this vendor answers when the account is out of credit."""
    voice: str = ""
    """The voice a TTS request asks for."""
    streams: bool = True
    lead_chunks: int = 0
    """Chunks the fake sends before the first part (the LLM's role-only chunk)."""
    one_request: dict[str, Any] = field(default_factory=dict)
    """Constructor overrides under which a failing call is exactly one request."""

    def heard(self, items: Sequence[Any]) -> object:
        """What a listener makes of what a request yielded. Audio is compared as
        joined bytes (its chunk boundaries are the network's); deltas and
        transcripts one by one (their boundaries are the model's)."""
        parts = [self.part(item) for item in items]
        return b"".join(parts) if self.stage == "tts" else parts

    def answer(self, first: int | None = None) -> object:
        """``heard`` of the fake's whole default answer, or of its first parts."""
        parts = self.parts()[:first]
        return b"".join(parts) if self.stage == "tts" else parts


async def _transcribe(stt: OpenAISTT) -> AsyncGenerator[Transcript, None]:
    yield await stt.transcribe(UTTERANCE)


CLOUDS = [
    Cloud(
        id="elevenlabs_tts",
        stage="tts",
        protocol=TextToSpeech,
        name="elevenlabs",
        provider=ElevenLabsTTS,
        start_fake=start_elevenlabs_fake,
        key="xi-test-key-0123456789abcdef",
        wrong_key="wrong-elevenlabs-key-must-not-leak",
        request=lambda tts: tts.synthesize(TEXT, ELEVENLABS_VOICE),
        part=lambda chunk: chunk.data,
        parts=lambda: split_bytes(mp3_bytes(), CHUNK),
        out_of_credit=(401, "quota_exceeded"),
        voice=ELEVENLABS_VOICE,
    ),
    Cloud(
        id="openai_tts",
        stage="tts",
        protocol=TextToSpeech,
        name="openai",
        provider=OpenAITTS,
        start_fake=start_openai_fake,
        key="sk-test-tts-0123456789abcdef",
        wrong_key="sk-wrong-tts-key-that-must-not-leak",
        request=lambda tts: tts.synthesize(TEXT, "alloy"),
        part=lambda chunk: chunk.data,
        parts=lambda: split_bytes(mp3_bytes(1.0, 24000), CHUNK),
        out_of_credit=(429, "insufficient_quota"),
        voice="alloy",
    ),
    Cloud(
        id="openai_llm",
        stage="llm",
        protocol=LanguageModel,
        name="openai",
        provider=OpenAILLM,
        start_fake=start_openai_fake,
        key="sk-test-llm-0123456789abcdef",
        # A project key, the form OpenAI hands out today.
        wrong_key="sk-proj-wrong-key-that-must-not-leak-7",
        request=lambda llm: llm.stream_reply(MESSAGES, ReplyOptions()),
        part=lambda delta: delta,
        parts=lambda: tokens_of(DEFAULT_REPLY),
        out_of_credit=(429, "insufficient_quota"),
        lead_chunks=1,
    ),
    Cloud(
        id="openai_stt",
        stage="stt",
        protocol=SpeechToText,
        name="openai",
        provider=OpenAISTT,
        start_fake=start_openai_fake,
        key="sk-test-stt-0123456789abcdef",
        wrong_key="sk-wrong-key-that-must-not-leak-42",
        request=_transcribe,
        part=lambda transcript: transcript.text,
        parts=lambda: [OpenAIKnobs().transcript],
        out_of_credit=(429, "insufficient_quota"),
        streams=False,
        # gpt-4o-transcribe asks json directly, so no verbose_json fallback
        # request follows a failure (whisper-1 retries a 400 as json).
        one_request={"model": "gpt-4o-transcribe"},
    ),
]

EVERY = [pytest.param(c, id=c.id) for c in CLOUDS]
STREAMING = [pytest.param(c, id=c.id) for c in CLOUDS if c.streams]
SPEAKING = [pytest.param(c, id=c.id) for c in CLOUDS if c.stage == "tts"]


@pytest.fixture(params=EVERY)
def cloud(request: pytest.FixtureRequest) -> Cloud:
    # Tests that hold only for some providers parametrize ``cloud`` themselves.
    return request.param


@pytest.fixture
async def fake(cloud: Cloud) -> AsyncIterator[FakeServer]:
    server = await cloud.start_fake(api_key=cloud.key, chunk_size=CHUNK)
    yield server
    await server.close()


@pytest.fixture
async def make(cloud: Cloud, fake: FakeServer) -> AsyncIterator[Callable[..., Any]]:
    async with provider_factory(cloud.provider, api_key=cloud.key, base_url=fake.base_url) as make:
        yield make


async def call(cloud: Cloud, provider: Any) -> list[Any]:
    """One request, waited out."""
    return [item async for item in cloud.request(provider)]


async def failure(cloud: Cloud, provider: Any, got: list[Any] | None = None) -> ProviderError:
    """One request that must fail, and its error; what arrived first goes to ``got``."""
    got = [] if got is None else got
    with pytest.raises(ProviderError) as info:
        async for item in cloud.request(provider):
            got.append(item)
    assert info.value.stage == cloud.stage
    return info.value


async def test_is_the_stages_protocol(cloud: Cloud, make: Callable[..., Any]) -> None:
    provider = make()
    assert isinstance(provider, cloud.protocol)
    assert provider.name == cloud.name


# -- HTTP errors -----------------------------------------------------------------------

# status, Retry-After header, error code -> kind, retryable, retry_after seconds
STATUS_ROWS: list[tuple[int, str | None, str | None, str, bool, float | None]] = [
    (400, None, None, "invalid", False, None),
    (401, None, None, "auth", False, None),
    (403, None, None, "auth", False, None),
    (404, None, None, "invalid", False, None),
    (422, None, None, "invalid", False, None),
    (402, None, None, "quota", False, None),
    (429, "2", None, "rate_limited", True, 2.0),
    (429, "1.5", None, "rate_limited", True, 1.5),
    (429, "Wed, 21 Oct 2015 07:28:00 GMT", None, "rate_limited", True, 0.0),  # a past date
    (429, None, None, "rate_limited", True, None),
    (500, None, None, "unavailable", True, None),
    (502, None, None, "unavailable", True, None),
    (503, None, None, "unavailable", True, None),
]


def _status_cases() -> list[Any]:
    cases = []
    for c in CLOUDS:
        status, code = c.out_of_credit
        for row in [*STATUS_ROWS, (status, None, code, "quota", False, None)]:
            cases.append(pytest.param(c, *row, id="-".join(map(str, (c.id, *row)))))
    return cases


@pytest.mark.parametrize(
    ("cloud", "status", "header", "code", "kind", "retryable", "after"), _status_cases()
)
async def test_http_errors_map_to_provider_errors(
    cloud: Cloud,
    fake: FakeServer,
    make: Callable[..., Any],
    status: int,
    header: str | None,
    code: str | None,
    kind: str,
    retryable: bool,
    after: float | None,
) -> None:
    fake.fail_next(status, count=-1, retry_after=header, code=code)
    err = await failure(cloud, make(**cloud.one_request))
    assert (err.kind, err.retryable, err.status) == (kind, retryable, status)
    assert err.retry_after == after
    assert len(fake.requests) == 1  # no retry inside the provider (the SDK's max_retries=0)


async def test_wrong_key_is_auth_and_never_shown(
    cloud: Cloud,
    fake: FakeServer,
    make: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    err = await failure(cloud, make(api_key=cloud.wrong_key))
    assert (err.kind, err.status) == ("auth", 401)
    assert "401" in str(err)
    # The fake's 401 body quotes the key it was sent, as a worst case.
    assert fake.requests[0].status == 401
    for text in (str(err), repr(err), caplog.text):
        assert cloud.wrong_key not in text
        assert cloud.wrong_key[:8] not in text  # nor its head, as in a masked "sk-wrong***42"
    assert err.__cause__ is None and err.__suppress_context__
    # A good call logs nothing secret either.
    await call(cloud, make())
    assert cloud.key not in caplog.text


# -- the network failing ---------------------------------------------------------------


async def test_connection_refused_is_unavailable(cloud: Cloud, make: Callable[..., Any]) -> None:
    closed = await cloud.start_fake()
    url = closed.base_url
    await closed.close()
    err = await failure(cloud, make(base_url=url))
    assert err.kind == "unavailable" and err.retryable


async def test_connection_reset_before_the_answer_is_unavailable(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.reset_after_chunks = 0
    err = await failure(cloud, make())
    assert err.kind == "unavailable" and err.retryable


@pytest.mark.parametrize("cloud", STREAMING)
async def test_connection_reset_mid_stream_is_unavailable(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.reset_after_chunks = cloud.lead_chunks + 2
    got: list[Any] = []
    err = await failure(cloud, make(), got)
    assert cloud.heard(got) == cloud.answer(2)  # what came before the reset was passed on
    assert err.kind == "unavailable" and err.retryable


async def test_timeout_before_headers_is_timeout(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.hang = True
    err = await failure(cloud, make(timeout_s=0.3))
    assert err.kind == "timeout" and err.retryable
    assert len(fake.requests) <= 1  # no retry (0 if the loop stalled)


@pytest.mark.parametrize("cloud", STREAMING)
async def test_timeout_mid_stream_is_timeout(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.hold_after_chunks = cloud.lead_chunks + 2
    got: list[Any] = []
    err = await failure(cloud, make(timeout_s=0.3), got)
    assert cloud.heard(got) == cloud.answer(2)
    assert err.kind == "timeout" and err.retryable


# -- streaming, cancelling and closing -------------------------------------------------


@pytest.mark.parametrize("cloud", STREAMING)
async def test_first_part_arrives_before_the_rest_is_sent(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.hold_after_chunks = cloud.lead_chunks + 1
    stream = cloud.request(make())
    first = await asyncio.wait_for(anext(stream), 3)
    rec = fake.requests[0]
    # The fake has sent one part and is waiting: playback (or the next stage) could start now.
    assert rec.holding and rec.chunks_sent == cloud.lead_chunks + 1 and not rec.finished
    assert cloud.heard([first]) == cloud.answer(1)
    fake.release()
    rest = [item async for item in stream]
    assert len(rest) >= 1
    assert cloud.heard([first, *rest]) == cloud.answer()
    assert rec.finished


async def test_caller_deadline_while_hanging_closes_the_connection(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.hang = True
    provider = make()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await call(cloud, provider)
    # The fake sees the client leave (if the request got as far as its handler).
    await wait_until(
        lambda: fake.open_connections == 0 and all(r.disconnected for r in fake.requests)
    )
    assert len(fake.requests) <= 1


@pytest.mark.parametrize("cloud", STREAMING)
async def test_cancelling_mid_stream_closes_the_response(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.hold_after_chunks = cloud.lead_chunks + 2
    got: list[Any] = []

    async def consume() -> None:
        async for item in cloud.request(make()):
            got.append(item)

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(got) == 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    rec = fake.requests[0]
    await wait_until(lambda: rec.disconnected)
    assert not rec.finished


@pytest.mark.parametrize("cloud", STREAMING)
async def test_closing_the_stream_closes_the_response(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    fake.knobs.hold_after_chunks = cloud.lead_chunks + 1
    stream = cloud.request(make())
    await anext(stream)
    await stream.aclose()  # barge-in: turn.py closes the stream
    [rec] = fake.requests
    await wait_until(lambda: rec.disconnected and fake.open_connections == 0)


async def test_connection_is_reused_between_requests(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any]
) -> None:
    # One TCP (and TLS) handshake per call, not per sentence or turn.
    provider = make()
    for _ in range(3):
        await call(cloud, provider)
    assert len(fake.requests) == 3
    assert fake.open_connections == 1


async def test_close_is_idempotent(cloud: Cloud, make: Callable[..., Any]) -> None:
    provider = make()
    await provider.close()
    await provider.close()


# -- TTS: nothing to say, or nothing audible said --------------------------------------


@pytest.mark.parametrize("cloud", SPEAKING)
@pytest.mark.parametrize("text", ["", "  "], ids=["empty", "spaces"])
async def test_blank_text_makes_no_request(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any], text: str
) -> None:
    assert [c async for c in make().synthesize(text, cloud.voice)] == []
    assert fake.requests == []


@pytest.mark.parametrize("cloud", SPEAKING)
@pytest.mark.parametrize(
    "knobs",
    [
        pytest.param(
            {"content_type": "text/html", "body": b"<html>captive portal</html>"}, id="html page"
        ),
        pytest.param({"content_type": "application/json", "body": b'{"ok": true}'}, id="json"),
        pytest.param({"empty_body": True}, id="zero bytes"),
        pytest.param({"body": b"<!DOCTYPE html><html></html>"}, id="audio/mpeg that is not mp3"),
        pytest.param({"body": b"\xff"}, id="one byte"),
    ],
)
async def test_non_audio_answer_is_bad_output(
    cloud: Cloud, fake: FakeServer, make: Callable[..., Any], knobs: dict[str, Any]
) -> None:
    for name, value in knobs.items():
        setattr(fake.knobs, name, value)
    err = await failure(cloud, make())
    assert (err.kind, err.retryable) == ("bad_output", False)
