"""The receptionist's tools: free times, book, find and cancel appointments.

Each tool is a plain transaction on the store (no double booking: the check
and the insert are one transaction, and a unique index backs it up across
processes); bookings and cancellations are atomic tools (registry.py).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from media_server.agents import Agent
from media_server.store import Database

from .hours import parse_day, parse_time, slots, spoken_day
from .registry import Tool, ToolFailed, ToolResult

Today = Callable[[], dt.date]
_DATE = {"type": "string", "description": "The day, YYYY-MM-DD"}
_TIME = {"type": "string", "description": "Start time, HH:MM (24 h)"}


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def tool_result(summary: str, **data: Any) -> ToolResult:
    return ToolResult(True, json.dumps(data), summary)


def future_day(text: str, today: Today) -> dt.date:
    try:
        day = parse_day(text)
    except ValueError as exc:
        raise ToolFailed(str(exc)) from None
    if day < today():
        raise ToolFailed(f"{day.isoformat()} is in the past (today is {today().isoformat()})")
    return day


def slot_time(text: str) -> str:
    """A time the caller asked for, as ``HH:MM``; a tool failure if it is none."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ToolFailed(str(exc)) from None


def free_times(conn: sqlite3.Connection, agent: Agent, day: dt.date) -> list[str]:
    taken = {
        row["time"]
        for row in conn.execute(
            "SELECT time FROM appointments WHERE agent_id = ? AND day = ? AND status = 'booked'",
            (agent.id, day.isoformat()),
        )
    }
    return [t for t in slots(agent.opening_hours, agent.slot_minutes, day) if t not in taken]


def receptionist_tools(agent: Agent, db: Database, today: Today = dt.date.today) -> list[Tool]:
    async def check_availability(args: dict[str, Any]) -> ToolResult:
        day = future_day(args["date"], today)
        free = await db.run(lambda conn: free_times(conn, agent, day))
        if not slots(agent.opening_hours, agent.slot_minutes, day):
            return tool_result(
                f"{spoken_day(day)}: closed", date=day.isoformat(), open=False, free=[]
            )
        return tool_result(
            f"{spoken_day(day)}: {len(free)} free times",
            date=day.isoformat(),
            weekday=day.strftime("%A"),
            open=True,
            free=free,
        )

    async def book_appointment(args: dict[str, Any]) -> ToolResult:
        day = future_day(args["date"], today)
        time = slot_time(args["time"])
        name = args["name"].strip()
        if not name:
            raise ToolFailed("a booking needs the patient's name")

        def book(conn: sqlite3.Connection) -> tuple[int | None, list[str]]:
            free = free_times(conn, agent, day)
            if time not in free:
                return None, free
            cur = conn.execute(
                "INSERT INTO appointments (agent_id, day, time, name, phone, reason, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    agent.id,
                    day.isoformat(),
                    time,
                    name,
                    args.get("phone", ""),
                    args.get("reason", ""),
                    now_utc(),
                ),
            )
            return cur.lastrowid, free

        booked, free = await db.run(book)
        if booked is None:
            why = (
                "is outside opening hours"
                if time not in slots(agent.opening_hours, agent.slot_minutes, day)
                else "is already taken"
            )
            raise ToolFailed(
                f"{spoken_day(day)} {time} {why}; free that day: {', '.join(free[:8]) or 'none'}"
            )
        return tool_result(
            f"Booked: {spoken_day(day)}, {time}",
            appointment_id=booked,
            date=day.isoformat(),
            time=time,
            name=name,
        )

    async def find_appointments(args: dict[str, Any]) -> ToolResult:
        name, phone = args.get("name", "").strip(), args.get("phone", "").strip()
        if not name and not phone:
            raise ToolFailed("give the name or the phone number the booking was made with")

        def find(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT id, day, time, name, reason FROM appointments WHERE agent_id = ?"
                " AND status = 'booked' AND day >= ? AND ((? != '' AND name LIKE ?)"
                " OR (? != '' AND phone = ?)) ORDER BY day, time LIMIT 10",
                (agent.id, today().isoformat(), name, f"%{name}%", phone, phone),
            )
            return [dict(r) for r in rows]

        found = await db.run(find)
        if not found:
            return tool_result("No appointment found", appointments=[])
        first = found[0]
        summary = f"Found: {spoken_day(parse_day(first['day']))}, {first['time']}"
        if len(found) > 1:
            summary += f" (+{len(found) - 1} more)"
        return tool_result(summary, appointments=found)

    async def cancel_appointment(args: dict[str, Any]) -> ToolResult:
        appointment_id = args["appointment_id"]

        def cancel(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT day, time FROM appointments WHERE id = ? AND agent_id = ?"
                " AND status = 'booked'",
                (appointment_id, agent.id),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE appointments SET status = 'cancelled' WHERE id = ?", (appointment_id,)
            )
            return dict(row)

        gone = await db.run(cancel)
        if gone is None:
            raise ToolFailed(f"there is no booked appointment {appointment_id}")
        return tool_result(
            f"Cancelled: {spoken_day(parse_day(gone['day']))}, {gone['time']}",
            appointment_id=appointment_id,
            cancelled=True,
        )

    def obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {"type": "object", "properties": props, "required": required}

    text = {"type": "string"}
    return [
        Tool(
            "check_availability",
            "Free appointment times on a day (opening hours and existing bookings).",
            obj({"date": _DATE}, ["date"]),
            check_availability,
        ),
        Tool(
            "book_appointment",
            "Book an appointment at a free time. Confirm day, time and name first.",
            obj(
                {"date": _DATE, "time": _TIME, "name": text, "phone": text, "reason": text},
                ["date", "time", "name"],
            ),
            book_appointment,
            atomic=True,
        ),
        Tool(
            "find_appointments",
            "Upcoming appointments booked under a name or phone number.",
            obj({"name": text, "phone": text}, []),
            find_appointments,
        ),
        Tool(
            "cancel_appointment",
            "Cancel a booked appointment by its id (find it first).",
            obj({"appointment_id": {"type": "integer"}}, ["appointment_id"]),
            cancel_appointment,
            atomic=True,
        ),
    ]
