"""Turns that call tools: the real OpenAILLM (real SDK) against the loopback
OpenAI fake streaming ``delta.tool_calls`` as OpenAI does, a fake TTS, a real
speaker on a fast clock, a real history and the events the page sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from media_server.agents import BUILTIN_AGENTS
from media_server.conversation import Conversation
from media_server.deadlines import StageDeadlines
from media_server.metrics import Metrics
from media_server.providers.openai_llm import OpenAILLM
from media_server.tools.registry import Tool, Toolbox, ToolResult
from media_server.tools.rounds import FILLER, GAVE_UP, MAX_ROUNDS
from media_server.turn import Turn
from tests.fakes.engines import FakeSTT, FakeTTS
from tests.fakes.openai_fake import OpenAIFake, start_openai_fake
from tests.fakes.pipeline import Playback, Sent, turn_context, wait_until

KEY = "sk-test-tools-0123456789abcdef"
AGENT = BUILTIN_AGENTS["receptionist"]
DEADLINES = StageDeadlines(stt_s=5.0, llm_s=5.0, tts_s=5.0)
NO_ARGS = {"type": "object", "properties": {}}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await start_openai_fake(api_key=KEY)
    yield server
    await server.close()


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def calls_until_answered(*calls: dict[str, Any]):
    """The model calls ``calls`` first, then answers in words quoting the results."""
    return lambda body: None if tool_messages(body) else list(calls)


def answer_from_tools(body: dict[str, Any]) -> str:
    return "Done. " + " ".join(m["content"] for m in tool_messages(body))


class Rig:
    def __init__(self, fake: OpenAIFake, tools: list[Tool]) -> None:
        from media_server.providers.base import Providers

        self.llm = OpenAILLM(api_key=KEY, base_url=fake.base_url)
        self.tts = FakeTTS()
        self.sent = Sent()
        providers = Providers(stt=FakeSTT(), llm=self.llm, tts=self.tts)
        self.ctx = turn_context(providers, agent=AGENT, deadlines=DEADLINES, send=self.sent)
        self.ctx.tools = Toolbox(tools)

    async def run_text(self, text: str, turn_id: int = 1):
        async with Playback(self.ctx.speaker):
            return await Turn(self.ctx, turn_id, text=text).run()


@pytest.fixture
async def make_rig(fake: OpenAIFake):
    rigs: list[Rig] = []

    def make(tools: list[Tool]) -> Rig:
        rigs.append(Rig(fake, tools))
        return rigs[-1]

    yield make
    for r in rigs:
        await r.llm.close()


def time_tool(log: list[dict[str, Any]]) -> Tool:
    async def run(args: dict[str, Any]) -> ToolResult:
        log.append(args)
        return ToolResult(True, json.dumps({"open": True, "city": args["city"]}), "Open today")

    params = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    return Tool("opening_hours", "Whether the clinic is open today", params, run)


async def test_one_tool_call_round_trip(fake: OpenAIFake, make_rig) -> None:
    ran: list[dict[str, Any]] = []
    fake.knobs.tool_calls = calls_until_answered(
        {"name": "opening_hours", "arguments": {"city": "Lyon"}}
    )
    fake.knobs.reply = answer_from_tools
    r = make_rig([time_tool(ran)])

    result = await r.run_text("Are you open today?")

    assert result.outcome == "completed"
    assert ran == [{"city": "Lyon"}]
    first, second = (req.json for req in fake.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["opening_hours"]
    # The second request carries the call (as the model streamed it) and its answer.
    assistant = [m for m in second["messages"] if m.get("tool_calls")]
    [call] = assistant[0]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Lyon"}
    [answer] = tool_messages(second)
    assert answer["tool_call_id"] == call["id"]
    assert json.loads(answer["content"]) == {"open": True, "city": "Lyon"}
    assert result.reply.startswith("Done.") and "Lyon" in result.reply
    # The page saw the call and its result; nothing was slow, so no filler.
    [shown] = r.sent.of("tool_call")
    assert shown == {
        "type": "tool_call",
        "call_id": call["id"],
        "name": "opening_hours",
        "arguments": {"city": "Lyon"},
    }
    assert r.sent.of("tool_result", call_id=call["id"], ok=True, summary="Open today")
    assert FILLER not in " ".join(r.tts.texts)
    # The history keeps the exchange, so the next turn's model knows it happened.
    roles = [m.role for m in r.ctx.history.messages("")]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]


async def test_two_calls_run_side_by_side(fake: OpenAIFake, make_rig) -> None:
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    def waits_for(me: str, other: str) -> Tool:
        async def run(args: dict[str, Any]) -> ToolResult:
            started[me].set()
            # Only calls running at the same time both get past this.
            await started[other].wait()
            return ToolResult(True, f'"{me} ok"', f"{me} ok")

        return Tool(f"tool_{me}", f"Tool {me}", NO_ARGS, run, timeout_s=5.0)

    fake.knobs.tool_calls = calls_until_answered(
        {"name": "tool_a", "arguments": {}}, {"name": "tool_b", "arguments": {}}
    )
    fake.knobs.reply = answer_from_tools
    r = make_rig([waits_for("a", "b"), waits_for("b", "a")])

    result = await r.run_text("Check both please")

    assert result.outcome == "completed"
    assert sorted(e["summary"] for e in r.sent.of("tool_result", ok=True)) == ["a ok", "b ok"]
    answers = tool_messages(fake.requests[-1].json)
    assert [a["content"] for a in answers] == ['"a ok"', '"b ok"']  # in call order


async def test_bad_arguments_and_unknown_tools_become_error_results(
    fake: OpenAIFake, make_rig
) -> None:
    ran: list[dict[str, Any]] = []
    fake.knobs.tool_calls = calls_until_answered(
        {"name": "opening_hours", "arguments": {"town": "Lyon"}},
        {"name": "no_such_tool", "arguments": {}},
    )
    fake.knobs.reply = answer_from_tools
    r = make_rig([time_tool(ran)])

    result = await r.run_text("Are you open?")

    assert result.outcome == "completed" and ran == []  # never ran with bad arguments
    errors = [json.loads(m["content"])["error"] for m in tool_messages(fake.requests[-1].json)]
    assert "'city' is a required property" in errors[0]
    assert "no tool named 'no_such_tool'" in errors[1]
    assert len(r.sent.of("tool_result", ok=False)) == 2


async def test_a_slow_tool_gets_a_spoken_filler(fake: OpenAIFake, make_rig) -> None:
    release = asyncio.Event()

    async def slow(args: dict[str, Any]) -> ToolResult:
        await release.wait()
        return ToolResult(True, '"found"', "Found")

    fake.knobs.tool_calls = calls_until_answered({"name": "lookup", "arguments": {}})
    fake.knobs.reply = answer_from_tools
    r = make_rig([Tool("lookup", "Slow lookup", NO_ARGS, slow, timeout_s=30.0)])

    turn = asyncio.create_task(r.run_text("Find my booking"))
    # The tool holds until the filler has been spoken: no filler, no answer.
    await wait_until(lambda: FILLER in r.tts.texts, timeout=10.0)
    release.set()
    result = await turn

    assert result.outcome == "completed"
    assert r.tts.texts[0] == FILLER
    assert result.reply.startswith(FILLER)
    assert r.sent.of("tool_result", ok=True, summary="Found")


async def test_a_tool_past_its_deadline_is_an_error_the_model_explains(
    fake: OpenAIFake, make_rig
) -> None:
    async def hangs(args: dict[str, Any]) -> ToolResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    fake.knobs.tool_calls = calls_until_answered({"name": "hangs", "arguments": {}})
    fake.knobs.reply = answer_from_tools
    r = make_rig([Tool("hangs", "Never answers", NO_ARGS, hangs, timeout_s=0.2)])

    result = await r.run_text("Try it")

    assert result.outcome == "completed"
    [answer] = tool_messages(fake.requests[-1].json)
    assert json.loads(answer["content"]) == {"error": "hangs did not answer within 0.2 s"}


async def test_rounds_per_turn_are_bounded(fake: OpenAIFake, make_rig) -> None:
    fake.knobs.tool_calls = lambda body: [{"name": "again", "arguments": {}}]
    r = make_rig([Tool("again", "Loops", NO_ARGS, lambda a: _ok())])

    result = await r.run_text("Loop forever")

    assert len(fake.requests) == MAX_ROUNDS
    assert result.outcome == "completed" and result.reply == GAVE_UP


async def _ok() -> ToolResult:
    return ToolResult(True, '"ok"', "ok")


async def test_barge_in_cancels_a_running_call_and_keeps_no_half_round(
    fake: OpenAIFake, make_rig
) -> None:
    running, cancelled, written = asyncio.Event(), asyncio.Event(), asyncio.Event()
    release_write = asyncio.Event()

    async def search(args: dict[str, Any]) -> ToolResult:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def write(args: dict[str, Any]) -> ToolResult:
        await release_write.wait()
        written.set()
        return ToolResult(True, '"saved"', "Saved")

    fake.knobs.tool_calls = calls_until_answered(
        {"name": "search", "arguments": {}}, {"name": "save", "arguments": {}}
    )
    fake.knobs.reply = answer_from_tools
    r = make_rig(
        [
            Tool("search", "Cancellable read", NO_ARGS, search, timeout_s=30.0),
            Tool("save", "A write", NO_ARGS, write, timeout_s=30.0, atomic=True),
        ]
    )
    conversation = Conversation(r.ctx, Metrics(), label="test")
    async with Playback(r.ctx.speaker):
        conversation.start(text="Look it up and save it")
        await asyncio.wait_for(running.wait(), 5.0)
        assert conversation.interrupt("barge_in")
        await asyncio.wait_for(cancelled.wait(), 5.0)  # the read stopped
        release_write.set()
        await asyncio.wait_for(written.wait(), 5.0)  # the write ended whole
        # The cut round is not in the history: no call without its answer.
        roles = [m.role for m in r.ctx.history.messages("")]
        assert "tool" not in roles and all(not m.tool_calls for m in r.ctx.history.messages(""))
        # The next turn works.
        fake.knobs.tool_calls = None
        fake.knobs.reply = "Anything else?"
        conversation.start(text="Never mind")
        await r.sent.wait_for("llm_response", is_final=True, text="Anything else?")
        await conversation.aclose()


async def test_a_model_that_refuses_tools_still_talks(fake: OpenAIFake, make_rig) -> None:
    fake.knobs.reject_tools = True
    fake.knobs.reply = "Happy to help."
    r = make_rig([time_tool([])])

    first = await r.run_text("Are you open?")
    second = await r.run_text("Thanks", turn_id=2)

    assert (first.outcome, first.reply) == ("completed", "Happy to help.")
    assert second.outcome == "completed"
    # One refused request, then no more tools offered to this model.
    assert ["tools" in req.json for req in fake.requests] == [True, False, False]


async def test_barge_in_during_a_real_booking_writes_it_whole(
    fake: OpenAIFake, make_rig, tmp_path
) -> None:
    import datetime as dt
    import threading

    from media_server.store import Database
    from media_server.tools.desk import persona_tools

    today = dt.date(2026, 12, 4)
    db = await Database.open(f"sqlite:///{tmp_path}/agent.db")
    gate = threading.Event()
    try:
        r = make_rig(persona_tools(AGENT, db, lambda: today))
        fake.knobs.tool_calls = calls_until_answered(
            {
                "name": "book_appointment",
                "arguments": {"date": "2026-12-08", "time": "09:00", "name": "Ada", "phone": "5"},
            }
        )
        fake.knobs.reply = answer_from_tools
        # The store's thread is busy: the booking waits in line behind this.
        busy = asyncio.ensure_future(db.run(lambda conn: gate.wait(10)))
        conversation = Conversation(r.ctx, Metrics(), label="test")
        async with Playback(r.ctx.speaker):
            conversation.start(text="Book Tuesday at nine for Ada")
            await r.sent.wait_for("tool_call", name="book_appointment")
            assert conversation.interrupt("barge_in")  # while the booking waits
            gate.set()
            await busy

            def rows(conn):
                return [dict(x) for x in conn.execute("SELECT * FROM appointments")]

            async with asyncio.timeout(5):  # the shielded booking ends on its own
                while not (found := await db.run(rows)):  # noqa: ASYNC110 - polling a db
                    await asyncio.sleep(0.01)
            [row] = found
            assert (row["day"], row["time"], row["name"], row["phone"], row["status"]) == (
                "2026-12-08",
                "09:00",
                "Ada",
                "5",
                "booked",
            )
            # The cut round is not in the conversation's memory.
            assert all(m.role != "tool" for m in r.ctx.history.messages(""))
            await conversation.aclose()
    finally:
        gate.set()
        await db.close()


async def test_a_spoken_turn_that_acted_is_not_continued_silently(
    fake: OpenAIFake, make_rig
) -> None:
    from media_server.types import Utterance
    from tests.audio_fixtures import speech_like

    release = asyncio.Event()

    async def wait(args: dict[str, Any]) -> ToolResult:
        await release.wait()
        return ToolResult(True, '"ok"', "ok")

    fake.knobs.tool_calls = calls_until_answered({"name": "look", "arguments": {}})
    fake.knobs.reply = "Found it."
    r = make_rig([Tool("look", "A lookup", NO_ARGS, wait, timeout_s=30.0)])
    turn = Turn(r.ctx, 1, utterance=Utterance(speech_like(0.5)))
    assert turn.continuable  # nothing heard, nothing done yet
    async with Playback(r.ctx.speaker):
        task = asyncio.create_task(turn.run())
        await r.sent.wait_for("tool_call", name="look")
        assert not turn.continuable  # it acted: talking on now interrupts it
        release.set()
        assert (await task).outcome == "completed"
