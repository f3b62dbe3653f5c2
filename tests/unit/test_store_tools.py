"""The persona tools on a real SQLite file: bookings, tickets, quotes, demos,
no double booking (also between two connections, as two workers would have),
and data that survives closing and opening the database again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from media_server.agents import BUILTIN_AGENTS
from media_server.store import Database, StoreError
from media_server.store.db import MIGRATIONS
from media_server.tools.desk import persona_tools
from media_server.tools.registry import Toolbox, ToolResult
from media_server.types import ToolCall

TODAY = dt.date(2026, 12, 4)  # a Friday
TUESDAY = "2026-12-08"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/data/agent.db"


async def box_for(persona: str, db: Database) -> Toolbox:
    return Toolbox(persona_tools(BUILTIN_AGENTS[persona], db, lambda: TODAY))


async def call(box: Toolbox, tool: str, /, **arguments) -> ToolResult:
    return await box.call(ToolCall(f"call-{tool}", tool, json.dumps(arguments)))


def data(result: ToolResult) -> dict:
    return json.loads(result.content)


async def test_book_find_cancel_and_no_double_booking(url: str) -> None:
    db = await Database.open(url)
    try:
        box = await box_for("receptionist", db)
        free = await call(box, "check_availability", date=TUESDAY)
        assert free.ok and "10:00" in data(free)["free"] and data(free)["weekday"] == "Tuesday"

        booked = await call(
            box, "book_appointment", date=TUESDAY, time="10:00", name="Ada Lovelace"
        )
        assert booked.ok and booked.summary == "Booked: Tue 8 Dec, 10:00"
        again = await call(box, "book_appointment", date=TUESDAY, time="10:00", name="Bob")
        assert not again.ok and "already taken" in again.summary and "10:30" in again.summary
        assert "10:00" not in data(await call(box, "check_availability", date=TUESDAY))["free"]

        found = await call(box, "find_appointments", name="ada")
        [appointment] = data(found)["appointments"]
        assert appointment["time"] == "10:00" and found.summary == "Found: Tue 8 Dec, 10:00"

        cancelled = await call(box, "cancel_appointment", appointment_id=appointment["id"])
        assert cancelled.ok and cancelled.summary == "Cancelled: Tue 8 Dec, 10:00"
        # The slot is free again and can be booked by someone else.
        assert (await call(box, "book_appointment", date=TUESDAY, time="10:00", name="Bob")).ok
    finally:
        await db.close()


async def test_opening_hours_and_the_past_are_enforced(url: str) -> None:
    db = await Database.open(url)
    try:
        box = await box_for("receptionist", db)
        closed = await call(box, "check_availability", date="2026-12-06")  # a Sunday
        assert closed.ok and data(closed) == {"date": "2026-12-06", "open": False, "free": []}
        late = await call(box, "book_appointment", date=TUESDAY, time="19:00", name="Ada")
        assert not late.ok and "outside opening hours" in late.summary
        past = await call(box, "book_appointment", date="2026-12-01", time="10:00", name="Ada")
        assert not past.ok and "in the past" in past.summary
        nonsense = await call(box, "check_availability", date="next tuesday")
        assert not nonsense.ok and "not a date" in nonsense.summary
    finally:
        await db.close()


async def test_two_connections_race_for_one_slot_and_one_wins(url: str) -> None:
    first, second = await Database.open(url), await Database.open(url)
    try:
        boxes = [await box_for("receptionist", first), await box_for("receptionist", second)]
        results = await asyncio.gather(
            *(
                call(box, "book_appointment", date=TUESDAY, time="11:00", name=f"P{i}")
                for i, box in enumerate(boxes * 3)
            )
        )
        assert sorted(r.ok for r in results) == [False] * 5 + [True]
    finally:
        await first.close()
        await second.close()


async def test_bookings_survive_closing_and_reopening(url: str) -> None:
    db = await Database.open(url)
    box = await box_for("receptionist", db)
    assert (await call(box, "book_appointment", date=TUESDAY, time="09:30", name="Grace")).ok
    await db.close()

    reopened = await Database.open(url)
    try:
        found = await call(
            await box_for("receptionist", reopened), "find_appointments", name="Grace"
        )
        assert found.summary == "Found: Tue 8 Dec, 09:30"
    finally:
        await reopened.close()


async def test_schema_version_is_kept_and_a_newer_database_is_refused(url: str) -> None:
    db = await Database.open(url)
    path = db.path
    await db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this server"):
        await Database.open(url)


async def test_tickets_quotes_and_demos(url: str) -> None:
    db = await Database.open(url)
    try:
        desk = await box_for("callcenter", db)
        opened = await call(desk, "create_ticket", name="Lin", issue="Wi-Fi drops", priority="high")
        assert opened.ok and opened.summary == "Ticket T-0001 opened"
        looked = await call(desk, "lookup_ticket", ticket="t-1")
        assert looked.summary == "Ticket T-0001: open" and data(looked)["issue"] == "Wi-Fi drops"
        assert not (await call(desk, "lookup_ticket", ticket="T-0099")).ok

        sales = await box_for("sales", db)
        quote = await call(sales, "quote_plan", plan="team", seats=10)
        assert quote.summary == "Quote: Team, 10 seats, $790/month"
        bad = await call(sales, "quote_plan", plan="gold", seats=10)
        assert not bad.ok and "bad arguments" in bad.summary  # the schema's enum
        demo = await call(sales, "book_demo", name="Kim", date=TUESDAY, time="14:00")
        assert demo.summary == "Demo booked: Tue 8 Dec, 14:00"
        assert not (await call(sales, "book_demo", name="Lee", date=TUESDAY, time="14:00")).ok
    finally:
        await db.close()


def test_bad_urls_are_refused() -> None:
    from media_server.store import database_path

    assert database_path("sqlite:///data/x.db") == Path("data/x.db")
    assert database_path("sqlite:////var/lib/x.db") == Path("/var/lib/x.db")
    for bad in ("postgres://h/db", "sqlite:///", "data/x.db"):
        with pytest.raises(ValueError):
            database_path(bad)


async def test_a_database_that_cannot_be_opened_stops_start_up_with_one_line(
    tmp_path: Path,
) -> None:
    import os
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{blocker}/voice-agent.db",
        "ICE_HOST_ADDRESSES": "127.0.0.1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "media_server",
        "--port",
        "0",
        cwd=tmp_path,  # no .env of the developer's
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("voice-agent: DATABASE_URL: database ") and "cannot open" in last
