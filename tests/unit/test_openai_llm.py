"""OpenAILLM through the real openai SDK against the loopback OpenAI fake (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from media_server.providers.base import ChatMessage, LanguageModel, ProviderError, ReplyOptions
from media_server.providers.openai_llm import OpenAILLM
from tests.fakes.http_fake import wait_until
from tests.fakes.openai_fake import DEFAULT_REPLY, OpenAIFake, start_openai_fake, tokens_of
from tests.fakes.providers import provider_factory

KEY = "sk-test-llm-0123456789abcdef"
MESSAGES = [
    ChatMessage("system", "You are a friendly receptionist."),
    ChatMessage("user", "Hi, do you have a room tonight?"),
    ChatMessage("assistant", "Let me check that for you."),
    ChatMessage("user", "Thanks!"),
]


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await start_openai_fake(api_key=KEY)
    yield server
    await server.close()


@pytest.fixture
async def make_llm(fake: OpenAIFake) -> AsyncIterator[Callable[..., OpenAILLM]]:
    async with provider_factory(OpenAILLM, api_key=KEY, base_url=fake.base_url) as make:
        yield make


async def collect(llm: OpenAILLM, options: ReplyOptions | None = None) -> list[str]:
    return [d async for d in llm.stream_reply(MESSAGES, options or ReplyOptions())]


async def test_is_a_language_model(make_llm: Callable[..., OpenAILLM]) -> None:
    llm = make_llm()
    assert isinstance(llm, LanguageModel)
    assert llm.name == "openai"


async def test_deltas_arrive_in_order(make_llm: Callable[..., OpenAILLM]) -> None:
    deltas = await collect(make_llm())
    assert deltas == tokens_of(DEFAULT_REPLY)
    assert len(deltas) > 3


async def test_request_carries_model_options_and_messages(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    await collect(make_llm(model="gpt-test-model"), ReplyOptions(temperature=0.25, max_tokens=42))
    [req] = fake.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.json
    assert body["model"] == "gpt-test-model"
    assert body["stream"] is True
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 42
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]


async def test_reply_can_depend_on_the_request(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.reply = lambda body: "You said: " + body["messages"][-1]["content"]
    assert "".join(await collect(make_llm())) == "You said: Thanks!"


async def test_first_delta_arrives_before_the_rest_is_sent(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.hold_after_chunks = 2  # the role chunk and the first token
    stream = make_llm().stream_reply(MESSAGES, ReplyOptions())
    first = await asyncio.wait_for(anext(stream), 3)
    assert first == tokens_of(DEFAULT_REPLY)[0]
    rec = fake.requests[0]
    assert rec.holding and not rec.finished
    fake.release()
    rest = [d async for d in stream]
    assert [first, *rest] == tokens_of(DEFAULT_REPLY)
    assert rec.finished


@pytest.mark.parametrize(
    "quirk", ["empty_choices_chunk", "null_content_delta", "include_usage", "all"]
)
async def test_tolerates_compatible_server_quirks(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM], quirk: str
) -> None:
    for name in ("empty_choices_chunk", "null_content_delta", "include_usage"):
        setattr(fake.knobs, name, quirk in (name, "all"))
    assert "".join(await collect(make_llm())) == DEFAULT_REPLY


async def test_max_tokens_cut_still_yields_the_partial_reply(
    make_llm: Callable[..., OpenAILLM],
) -> None:
    deltas = await collect(make_llm(), ReplyOptions(max_tokens=3))
    assert deltas == tokens_of(DEFAULT_REPLY)[:3]


async def test_empty_reply_is_bad_output(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.reply = ""
    with pytest.raises(ProviderError) as info:
        await collect(make_llm())
    assert (info.value.stage, info.value.kind) == ("llm", "bad_output")


async def test_error_event_mid_stream_is_unavailable(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.stream_error_after_tokens = 2
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        async for delta in make_llm().stream_reply(MESSAGES, ReplyOptions()):
            got.append(delta)
    assert got == tokens_of(DEFAULT_REPLY)[:2]
    assert info.value.kind == "unavailable"


async def test_connection_reset_mid_stream_is_unavailable(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.reset_after_chunks = 3
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        async for delta in make_llm().stream_reply(MESSAGES, ReplyOptions()):
            got.append(delta)
    assert got == tokens_of(DEFAULT_REPLY)[:2]
    assert info.value.kind == "unavailable" and info.value.retryable


ERROR_TABLE = [
    (400, None, None, "invalid", False, None),
    (401, None, None, "auth", False, None),
    (403, None, None, "auth", False, None),
    (404, None, None, "invalid", False, None),
    (422, None, None, "invalid", False, None),
    (402, None, None, "quota", False, None),
    (429, "2", None, "rate_limited", True, 2.0),
    (429, None, None, "rate_limited", True, None),
    (429, None, "insufficient_quota", "quota", False, None),
    (500, None, None, "unavailable", True, None),
    (502, None, None, "unavailable", True, None),
]


@pytest.mark.parametrize(("status", "header", "code", "kind", "retryable", "after"), ERROR_TABLE)
async def test_http_errors_map_to_provider_errors(
    fake: OpenAIFake,
    make_llm: Callable[..., OpenAILLM],
    status: int,
    header: str | None,
    code: str | None,
    kind: str,
    retryable: bool,
    after: float | None,
) -> None:
    fake.fail_next(status, count=-1, retry_after=header, code=code)
    with pytest.raises(ProviderError) as info:
        await collect(make_llm())
    err = info.value
    assert (err.stage, err.kind, err.retryable, err.status) == ("llm", kind, retryable, status)
    assert err.retry_after == after
    assert len(fake.requests) == 1  # max_retries=0: the SDK retried nothing


async def test_wrong_key_never_appears_in_errors_or_logs(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-proj-wrong-key-that-must-not-leak-7"
    with pytest.raises(ProviderError) as info:
        await collect(make_llm(api_key=wrong))
    err = info.value
    assert err.kind == "auth"
    assert "401" in str(err)
    for text in (str(err), repr(err), caplog.text):
        assert wrong not in text
    assert err.__cause__ is None and err.__suppress_context__
    # A good call logs nothing secret either.
    await collect(make_llm())
    assert KEY not in caplog.text


async def test_sdk_timeout_before_headers_is_timeout(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.hang = True
    with pytest.raises(ProviderError) as info:
        await collect(make_llm(timeout_s=0.3))
    assert info.value.kind == "timeout" and info.value.retryable
    assert len(fake.requests) <= 1  # no retry (0 if the loop stalled)


async def test_sdk_timeout_mid_stream_is_timeout(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.hold_after_chunks = 3
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        async for delta in make_llm(timeout_s=0.3).stream_reply(MESSAGES, ReplyOptions()):
            got.append(delta)
    assert len(got) == 2
    assert info.value.kind == "timeout"


async def test_caller_deadline_while_hanging_closes_the_connection(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.hang = True
    llm = make_llm()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await collect(llm)
    # The fake sees the client leave (if the request got as far as its handler).
    await wait_until(
        lambda: fake.open_connections == 0 and all(r.disconnected for r in fake.requests)
    )
    assert len(fake.requests) <= 1


async def test_cancelling_mid_stream_closes_the_response(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.hold_after_chunks = 3
    got: list[str] = []

    async def consume() -> None:
        async for delta in make_llm().stream_reply(MESSAGES, ReplyOptions()):
            got.append(delta)

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(got) == 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    rec = fake.requests[0]
    await wait_until(lambda: rec.disconnected)
    assert not rec.finished


async def test_closing_the_generator_closes_the_response(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    fake.knobs.hold_after_chunks = 3
    stream = make_llm().stream_reply(MESSAGES, ReplyOptions())
    await anext(stream)
    await stream.aclose()  # what turn.py does on barge-in
    await wait_until(lambda: fake.requests[0].disconnected)


async def test_connection_is_reused_between_replies(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    llm = make_llm()
    await collect(llm)
    await collect(llm)
    assert len(fake.requests) == 2
    assert fake.open_connections == 1


async def test_close_is_idempotent(make_llm: Callable[..., OpenAILLM]) -> None:
    llm = make_llm()
    await llm.close()
    await llm.close()


async def test_keyless_compatible_server_works(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    # Ollama, llama.cpp and friends take no key; the SDK would refuse an empty one.
    fake.knobs.api_key = None
    assert "".join(await collect(make_llm(api_key=""))) == DEFAULT_REPLY
    assert fake.requests[0].headers["authorization"] == "Bearer no-key"
