"""The offline scripted receptionist books, finds and cancels through the same
tools and the same SQLite rows a language model would use; a later
conversation, on a reopened database, finds what an earlier one booked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from media_server.agents import BUILTIN_AGENTS
from media_server.deadlines import StageDeadlines
from media_server.providers.base import Providers
from media_server.providers.scripted.acting import resolve_day, resolve_time
from media_server.providers.scripted_llm import ScriptedLLM
from media_server.store import Database
from media_server.tools.desk import persona_tools
from media_server.tools.registry import Toolbox
from media_server.turn import Turn
from tests.fakes.engines import FakeSTT, FakeTTS
from tests.fakes.pipeline import Playback, Sent, turn_context

TODAY = dt.date(2026, 12, 4)  # a Friday
AGENT = BUILTIN_AGENTS["receptionist"]


class Call:
    """One conversation with a scripted agent (the receptionist by default) on a database."""

    def __init__(self, db: Database, agent=AGENT) -> None:
        self.sent = Sent()
        providers = Providers(stt=FakeSTT(), llm=ScriptedLLM(today=lambda: TODAY), tts=FakeTTS())
        self.ctx = turn_context(
            providers, agent=agent, deadlines=StageDeadlines(5, 5, 5), send=self.sent
        )
        self.ctx.tools = Toolbox(persona_tools(agent, db, lambda: TODAY))
        self.turns = 0

    async def say(self, text: str) -> str:
        self.turns += 1
        async with Playback(self.ctx.speaker):
            result = await Turn(self.ctx, self.turns, text=text).run()
        assert result.outcome == "completed"
        return result.reply

    def results(self) -> list[dict]:
        return self.sent.of("tool_result")


async def book_ada(db: Database) -> Call:
    call = Call(db)
    await call.say("Hi, I'd like to book an appointment for a checkup")
    await call.say("My name is Ada Lovelace")
    await call.say("Tuesday at 10 am")
    reply = await call.say("555 123 4567")
    assert "You're booked for a checkup on Tuesday at 10 am" in reply
    return call


async def test_a_scripted_booking_writes_the_row_a_later_call_finds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/voice-agent.db"
    db = await Database.open(url)
    call = await book_ada(db)
    [booked] = call.results()
    assert booked["ok"] and booked["summary"] == "Booked: Tue 8 Dec, 10:00"
    [shown] = call.sent.of("tool_call")
    assert shown["arguments"] == {
        "date": "2026-12-08",
        "time": "10:00",
        "name": "Ada Lovelace",
        "phone": "5551234567",
        "reason": "a checkup",
    }
    await db.close()

    # A restart: a new database connection, a new conversation with no history.
    reopened = await Database.open(url)
    try:
        later = Call(reopened)
        assert "What name" in await later.say("When is my appointment?")
        reply = await later.say("Ada Lovelace")
        assert reply.startswith("I found it: Ada Lovelace, Tue 8 Dec at 10:00.")
        reply = await later.say(
            "I need to cancel my appointment on Tuesday, my name is Ada Lovelace"
        )
        assert "is cancelled" in reply
        assert later.results()[-1]["summary"] == "Cancelled: Tue 8 Dec, 10:00"
        # Cancelled is cancelled, for the next caller too.
        reply = await Call(reopened).say("When is my appointment? My name is Ada Lovelace")
        assert reply.startswith("I couldn't find an upcoming appointment")
    finally:
        await reopened.close()


async def test_a_taken_slot_is_said_not_confirmed(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite:///{tmp_path}/voice-agent.db")
    try:
        await book_ada(db)
        other = Call(db)
        await other.say("I'd like to book an appointment for a fever")
        await other.say("My name is Alan Turing")
        await other.say("Tuesday at 10 am")
        reply = await other.say("555 987 6543")
        assert "already taken" in reply and "You're booked" not in reply
        assert "10:30" in reply  # the free times that day are offered
        assert other.results()[-1]["ok"] is False
    finally:
        await db.close()


async def test_scripted_support_opens_a_real_ticket_and_sales_books_a_real_demo(
    tmp_path: Path,
) -> None:
    db = await Database.open(f"sqlite:///{tmp_path}/voice-agent.db")
    try:
        support = Call(db, BUILTIN_AGENTS["callcenter"])
        await support.say("I can't log in to my account")
        for _ in range(2):
            await support.say("no")
        reply = await support.say("no")
        assert "I've opened ticket number T 0 0 0 1," in reply
        assert support.results()[-1]["summary"] == "Ticket T-0001 opened"
        assert "Your ticket number is T 0 0 0 1." in await support.say("no, that's all, bye")

        sales = Call(db, BUILTIN_AGENTS["sales"])
        await sales.say("I'd like to see a demo")
        await sales.say("Tuesday")
        assert "You're booked for a 30 minute demo on Tuesday at 2 pm" in await sales.say("2 pm")
        assert sales.results()[-1]["summary"] == "Demo booked: Tue 8 Dec, 14:00"
        # The same slot for another caller is said to be taken, not confirmed.
        other = Call(db, BUILTIN_AGENTS["sales"])
        await other.say("Can I get a demo?")
        await other.say("Tuesday")
        taken = await other.say("2 pm")
        assert "already booked" in taken and "You're booked" not in taken
    finally:
        await db.close()


def test_spoken_days_and_times_become_dates_and_clock_times() -> None:
    assert resolve_day("Tuesday", TODAY) == dt.date(2026, 12, 8)
    assert resolve_day("next Tuesday", TODAY) == dt.date(2026, 12, 15)
    assert resolve_day("Friday", TODAY) == dt.date(2026, 12, 11)  # today is Friday: the next one
    assert resolve_day("tomorrow", TODAY) == dt.date(2026, 12, 5)
    assert resolve_day("January 3", TODAY) == dt.date(2027, 1, 3)
    assert resolve_day("the 2th", TODAY) == dt.date(2027, 1, 2)
    assert resolve_day("someday", TODAY) is None
    assert [resolve_time(t) for t in ("10 am", "2:30 pm", "12 pm", "noon", "in the morning")] == [
        "10:00",
        "14:30",
        "12:00",
        "12:00",
        "09:00",
    ]
    assert resolve_time("soonish") is None
