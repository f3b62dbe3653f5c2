"""Fallback chains: which engine a stage asks, and a failing one handing the
request to the next (providers/fallback.py, deadlines.first_item)."""

from __future__ import annotations

import asyncio

import pytest

from media_server.deadlines import StageDeadlines, aclose, first_item
from media_server.providers.fallback import EngineChain
from media_server.types import ProviderError, ReplyOptions
from tests.fakes.engines import FakeLLM, FakeTTS, fail, hang

OPTIONS = ReplyOptions(temperature=0.0, max_tokens=50, persona="")
DEADLINES = StageDeadlines(stt_s=0.2, llm_s=0.2, tts_s=0.2)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def named(engine, name: str):
    engine.name = name
    return engine


def chain_of(*names: str, clock: Clock, cooldown_s: float = 30.0) -> EngineChain:
    return EngineChain(
        "tts", [named(FakeTTS(), n) for n in names], cooldown_s=cooldown_s, clock=clock
    )


@pytest.mark.parametrize("kind", ["auth", "quota", "invalid", "timeout"])
def test_an_engine_that_will_fail_again_rests_and_the_next_leads(kind: str) -> None:
    clock = Clock()
    chain = chain_of("eleven", "openai", "espeak", clock=clock)
    eleven, openai, espeak = chain.engines
    chain.failed(eleven, ProviderError("tts", kind))
    assert chain.order() == [openai, espeak, eleven]
    assert chain.name == "openai" and chain.has_alternative(eleven)
    clock.now = 29.9
    assert chain.resting(eleven)
    clock.now = 30.0  # the cool-down is over: it leads again
    assert chain.order() == [eleven, openai, espeak] and chain.name == "eleven"


def test_one_passing_fault_is_forgiven_two_in_a_row_are_not() -> None:
    clock = Clock()
    chain = chain_of("eleven", "espeak", clock=clock)
    eleven, espeak = chain.engines
    blip = ProviderError("tts", "unavailable")
    chain.failed(eleven, blip)
    assert chain.preferred is eleven
    chain.succeeded(eleven)  # a success in between resets the count
    chain.failed(eleven, blip)
    assert chain.preferred is eleven
    chain.failed(eleven, blip)
    assert chain.preferred is espeak


def test_when_every_engine_rests_all_are_still_tried_in_order() -> None:
    clock = Clock()
    chain = chain_of("a", "b", clock=clock)
    a, b = chain.engines
    chain.failed(a, ProviderError("tts", "auth"))
    clock.now = 1.0
    chain.failed(b, ProviderError("tts", "auth"))
    assert chain.order() == [a, b] and not chain.has_alternative(a)


def test_a_chain_needs_an_engine_and_knows_its_own() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EngineChain("llm", [])
    chain = chain_of("a", clock=Clock())
    with pytest.raises(ValueError, match="not in the tts chain"):
        chain.failed(named(FakeTTS(), "stranger"), ProviderError("tts", "auth"))


async def _first_token(chain: EngineChain, told: list) -> str:
    first, stream = await first_item(
        "llm",
        chain,
        lambda engine: engine.stream_reply([], OPTIONS),
        DEADLINES,
        lambda: True,
        lambda stage, frm, to: told.append((stage, frm, to)),
    )
    await aclose(stream)
    return first


async def test_a_rejected_key_hands_the_same_request_to_the_next_engine() -> None:
    rejected = named(FakeLLM("from the cloud", faults=fail(ProviderError("llm", "auth"))), "cloud")
    backup = named(FakeLLM("from the backup"), "scripted")
    chain = EngineChain("llm", [rejected, backup])
    told: list = []
    assert await _first_token(chain, told) == "from"
    assert told == [("llm", "cloud", "scripted")]
    assert len(rejected.calls) == 1 and len(backup.calls) == 1  # a bad key is not retried
    # The next request goes straight to the backup: the rejected key rests.
    told.clear()
    await _first_token(chain, told)
    assert told == [] and len(rejected.calls) == 1 and len(backup.calls) == 2


async def test_an_engine_past_its_deadline_hands_over_and_is_closed() -> None:
    silent = named(FakeLLM("never", faults=hang()), "cloud")
    backup = named(FakeLLM("here"), "scripted")
    told: list = []
    assert await _first_token(EngineChain("llm", [silent, backup]), told) == "here"
    assert told == [("llm", "cloud", "scripted")]
    assert silent.calls[0].outcome in ("cancelled", "closed")


async def test_the_last_engine_keeps_its_one_retry_and_then_the_error_stands() -> None:
    down = ProviderError("llm", "unavailable", retry_after=0.01)
    first = named(FakeLLM("x", faults=fail(down)), "cloud")
    last = named(FakeLLM("y", faults=fail(down)), "scripted")
    with pytest.raises(ProviderError) as raised:
        await _first_token(EngineChain("llm", [first, last]), [])
    assert raised.value is down
    assert (len(first.calls), len(last.calls)) == (1, 2)


async def test_a_fallback_voice_speaks_in_its_own_voice() -> None:
    from media_server.agents import BUILTIN_AGENTS

    agent = BUILTIN_AGENTS["receptionist"]
    eleven = named(FakeTTS(faults=fail(ProviderError("tts", "quota"))), "elevenlabs")
    espeak = named(FakeTTS(), "espeak")
    chain = EngineChain("tts", [eleven, espeak])
    first, stream = await first_item(
        "tts",
        chain,
        lambda engine: engine.synthesize("Hello.", agent.voice_for(engine.name)),
        DEADLINES,
        lambda: True,
    )
    await aclose(stream)
    assert first.data
    assert eleven.calls[0].request.voice == agent.voice_id
    assert espeak.calls[0].request.voice == agent.espeak_voice


async def test_a_chain_stands_in_for_its_preferred_engine() -> None:
    clock = Clock()
    a, b = named(FakeTTS(), "a"), named(FakeTTS(), "b")
    chain = EngineChain("tts", [a, b], clock=clock)
    chain.failed(a, ProviderError("tts", "auth"))
    assert chain.capabilities is b.capabilities and chain.names == ["a", "b"]
    await aclose(chain.synthesize("Hi.", "v"))
    await chain.warm_up()
    await chain.close()
    assert (len(a.calls), len(b.calls)) == (0, 1)
    assert a.warm_ups == b.warm_ups == 1 and a.closed and b.closed
    await asyncio.sleep(0)
