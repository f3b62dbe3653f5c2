"""OpenAILLM through the real openai SDK against the loopback OpenAI fake (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from media_server.providers.openai_llm import OpenAILLM
from media_server.types import ChatMessage, ProviderError, ReplyOptions
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


async def test_keyless_compatible_server_works(
    fake: OpenAIFake, make_llm: Callable[..., OpenAILLM]
) -> None:
    # Ollama, llama.cpp and friends take no key; the SDK would refuse an empty one.
    fake.knobs.api_key = None
    assert "".join(await collect(make_llm(api_key=""))) == DEFAULT_REPLY
    assert fake.requests[0].headers["authorization"] == "Bearer no-key"
