"""Preemptive replies: the LLM starts on a pause's transcript, before the turn ends.

A session with in-process fake engines and its clock in the test's hands
(``Call.say`` feeds 20 ms frames at ``call.now``): the pause is reported,
transcribed and answered before the turn's silence has run out; nothing is
spoken before the turn ends; a reply for words the person went on from is
dropped, never spoken, never in the history, and its tokens are counted.
Run inside a loopback-only network namespace, as test_session.py.
"""

from __future__ import annotations

import asyncio

from media_server.agents import BUILTIN_AGENTS
from media_server.deadlines import StageDeadlines
from media_server.preemptive import AdoptedLLM, PreemptiveReply
from media_server.types import ChatMessage, ProviderError, ReplyOptions
from tests.audio_fixtures import silence, speech_like
from tests.fakes.engines import FakeLLM, FakeSTT, FakeTTS, fail, fake_providers, tokens_of
from tests.fakes.pipeline import wait_until
from tests.unit import test_session
from tests.unit.test_session import Call

calls = test_session.calls  # the session fixture: opens calls, checks nothing is left

AGENT = BUILTIN_AGENTS["receptionist"]
FIRST = "Sorry, I did not catch that."
REPLY = "Sure, an appointment it is."
SILENCE = {"turn_detector": "silence", "turn_silence_ms": 400}


def counted(call: Call, name: str, **labels: str) -> float:
    return call.metrics.registry.get_sample_value(name, labels) or 0.0


def history(call: Call) -> list[tuple[str, str]]:
    messages = call.session.history.messages("")
    return [(m.role, m.content) for m in messages if m.role != "system"]


async def pause_answered(call: Call, llm: FakeLLM, calls_made: int) -> None:
    """Let the pause's transcript and the model's first token come back
    (their fakes answer at once), with the clock standing still."""
    await wait_until(lambda: len(llm.calls) == calls_made and llm.calls[-1].items > 0)


async def test_the_reply_starts_at_the_pause_and_is_heard_only_after_the_turn(calls) -> None:
    stt, llm = FakeSTT("I would like an appointment"), FakeLLM(REPLY)
    call = calls(fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60)), **SILENCE)
    call.say(speech_like(0.6))
    call.say(silence(0.2))  # a pause, 200 ms short of the turn's end
    await pause_answered(call, llm, 1)
    # Asked on the pause's words, with the history as the turn will have it...
    assert llm.messages[0][-1] == ChatMessage("user", "I would like an appointment")
    # ... yet the turn has not ended: nothing said, shown or remembered.
    assert not call.session.conversation.busy
    assert call.session.speaker.queued_samples == 0 and call.session.speaker.played_samples == 0
    assert call.sent.of("llm_response") == [] and history(call) == []

    call.say(silence(0.4))  # the turn ends
    await call.sent.wait_for("turn_metrics")
    await wait_until(lambda: not call.session.conversation.busy)
    assert len(llm.calls) == 1 and len(stt.utterances) == 1  # neither asked again
    assert call.sent.of("llm_response", is_final=True)[0]["text"] == REPLY
    assert history(call) == [("user", "I would like an appointment"), ("assistant", REPLY)]
    assert counted(call, "voice_agent_preemptive_replies_total", outcome="adopted") == 1
    assert counted(call, "voice_agent_preemptive_wasted_tokens_total") == 0


async def test_a_reply_for_words_the_person_went_on_from_is_dropped_and_counted(calls) -> None:
    stt = FakeSTT(["I would like", "I would like an appointment"])
    llm = FakeLLM([FIRST, REPLY])
    call = calls(fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60)), **SILENCE)
    call.say(speech_like(0.6) + silence(0.2))
    await pause_answered(call, llm, 1)
    call.say(speech_like(0.6))  # the person goes on
    await wait_until(lambda: llm.calls[0].outcome in ("cancelled", "closed", "done"))
    call.say(silence(0.2))
    await pause_answered(call, llm, 2)
    call.say(silence(0.4))
    await call.sent.wait_for("turn_metrics")
    await wait_until(lambda: not call.session.conversation.busy)

    assert [m[-1].content for m in llm.messages] == ["I would like", "I would like an appointment"]
    # The dropped reply was never shown, spoken into the turn, nor remembered.
    assert all(FIRST not in e["text"] for e in call.sent.of("llm_response"))
    assert history(call) == [("user", "I would like an appointment"), ("assistant", REPLY)]
    assert counted(call, "voice_agent_preemptive_replies_total", outcome="discarded") == 1
    assert counted(call, "voice_agent_preemptive_replies_total", outcome="adopted") == 1
    wasted = llm.calls[0].items
    assert wasted > 0
    await wait_until(lambda: counted(call, "voice_agent_preemptive_wasted_tokens_total") == wasted)
    assert counted(call, "voice_agent_preemptive_wasted_tokens_per_reply_count") == 1


async def test_words_that_read_unfinished_start_no_reply(calls) -> None:
    stt, llm = FakeSTT(["I would like an appointment for", "unused"]), FakeLLM(REPLY)
    providers = fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60))
    call = calls(providers, turn_detector="lexical")
    call.say(speech_like(0.6) + silence(0.3))
    await wait_until(lambda: call.session.status == "still_listening")
    assert len(stt.utterances) == 1 and llm.calls == []
    assert counted(call, "voice_agent_preemptive_replies_total", outcome="started") == 0


async def test_a_partial_decode_starts_no_reply_and_is_not_asked_at_pauses(calls) -> None:
    stt, llm = FakeSTT("I would like an appointment", streaming=True), FakeLLM(REPLY)
    call = calls(fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60)), **SILENCE)
    call.say(speech_like(0.6) + silence(0.2))
    await asyncio.sleep(0.05)
    [stream] = stt.streams
    assert stream.interims == 0 and llm.calls == []  # "silence" reads no words
    call.say(silence(0.4))
    await call.sent.wait_for("turn_metrics")
    assert stream.finished and len(llm.calls) == 1


async def test_off_asks_the_model_only_once_the_turn_has_ended(calls) -> None:
    stt, llm = FakeSTT("I would like an appointment"), FakeLLM(REPLY)
    providers = fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60))
    call = calls(providers, preemptive_reply="off", **SILENCE)
    call.say(speech_like(0.6) + silence(0.2))
    await asyncio.sleep(0.05)
    assert llm.calls == [] and stt.utterances == []  # no speculation with "silence"
    call.say(silence(0.4))
    await call.sent.wait_for("turn_metrics")
    assert len(llm.calls) == 1 and len(stt.utterances) == 1


async def test_a_preemptive_request_that_fails_is_asked_again_by_the_turn(calls) -> None:
    llm = FakeLLM(REPLY, faults=[fail(ProviderError("llm", "unavailable"), on=[1, 2])])
    stt = FakeSTT("I would like an appointment")
    call = calls(fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60)), **SILENCE)
    call.say(speech_like(0.6) + silence(0.2))
    # The preemptive request fails, and so does its one retry.
    await wait_until(lambda: len(llm.calls) == 2 and llm.calls[1].outcome == "failed")
    call.say(silence(0.4))
    final = await call.sent.wait_for("llm_response", is_final=True)
    assert final["text"] == REPLY and len(llm.calls) == 3
    assert call.sent.of("error") == []


async def test_the_turn_asks_the_engine_itself_for_any_other_conversation() -> None:
    llm = FakeLLM([FIRST, REPLY])
    options = ReplyOptions(temperature=0.5, max_tokens=100)
    spoken = [ChatMessage("system", "S"), ChatMessage("user", "I would like")]
    deadlines = StageDeadlines(stt_s=5.0, llm_s=5.0, tts_s=5.0)
    reply = PreemptiveReply(llm, spoken, options, deadlines, pause=1, text="I would like")
    await wait_until(lambda: len(llm.calls) == 1)  # asked on the pause's words
    unused: list[PreemptiveReply] = []
    adopted = AdoptedLLM(llm, reply, on_unused=lambda r: (unused.append(r), r.cancel()))
    other = [ChatMessage("system", "S"), ChatMessage("user", "I would like a room")]
    tokens = [t async for t in adopted.stream_reply(other, options)]
    assert "".join(tokens) == REPLY and len(llm.calls) == 2
    assert unused == [reply]  # told, so the session counts its tokens as wasted
    await reply.wait_closed()
    assert llm.calls[0].outcome in ("cancelled", "closed", "done")
    assert tokens_of(REPLY) == tokens


async def test_an_acting_agent_s_reply_is_started_with_the_turn_s_own_request() -> None:
    """The turn offers its tools (and today's date) to the model: a reply
    started without them would never be adopted, every turn's tokens wasted."""
    from media_server.metrics import Metrics
    from media_server.preemptive import Preemption
    from media_server.reply import reply_request
    from media_server.text import ConversationHistory
    from media_server.tools.registry import Tool, Toolbox

    async def noop(arguments: dict) -> str:
        return "ok"

    tools = Toolbox([Tool("check", "Check a thing", {"type": "object", "properties": {}}, noop)])
    llm = FakeLLM(REPLY)
    deadlines = StageDeadlines(stt_s=5.0, llm_s=5.0, tts_s=5.0)
    preemption = Preemption(
        llm, ConversationHistory(20), AGENT, deadlines, Metrics(), label="t", tools=tools
    )
    preemption.start(1, "I would like", "I would like")
    pending = preemption.pending
    assert pending is not None
    prompt, options = reply_request(AGENT, tools)
    assert options.tools and pending.options == options
    assert pending.messages[0] == ChatMessage("system", prompt)
    preemption.discard("test")
    await pending.wait_closed()


async def test_a_reply_started_for_an_agent_with_tools_is_the_turns_own_request() -> None:
    """The turn offers its tools and today's date (reply.reply_request): the
    preemptive reply asks for the same, or it could never be adopted."""
    from media_server.metrics import Metrics
    from media_server.preemptive import Preemption
    from media_server.reply import reply_request
    from media_server.text import ConversationHistory
    from media_server.tools.registry import Tool, Toolbox, ToolResult

    async def run(args: dict) -> ToolResult:
        return ToolResult(True, "{}", "ok")

    box = Toolbox([Tool("look", "A lookup", {"type": "object", "properties": {}}, run)])
    llm, history = FakeLLM(REPLY), ConversationHistory()
    preemption = Preemption(
        llm, history, AGENT, StageDeadlines(5, 5, 5), Metrics(), label="t", tools=box
    )
    preemption.start(1, "I would like an appointment", "I would like an appointment")
    adopted = preemption.adopt("I would like an appointment")
    assert adopted is not None
    history.add_user("I would like an appointment")  # as the turn does
    prompt, options = reply_request(AGENT, box)
    assert options.tools and "Today is" in prompt
    items = [item async for item in adopted.stream_reply(history.messages(prompt), options)]
    assert "".join(items) == REPLY
    assert len(llm.calls) == 1  # answered by the preemptive reply, not asked again
    await preemption.aclose()
