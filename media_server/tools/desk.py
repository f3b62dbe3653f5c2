"""The call center's tickets and the sales agent's quotes and demos."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Any

from media_server.agents import Agent
from media_server.store import Database

from .appointments import Today, future_day, now_utc, slot_time, tool_result
from .hours import slots, spoken_day
from .registry import Tool, ToolFailed, ToolResult

# Plan -> price per seat and month in USD (yearly billing: two months free).
PLANS: dict[str, int] = {"starter": 29, "team": 79, "business": 149}
_TEXT = {"type": "string"}


def ticket_code(ticket_id: int) -> str:
    return f"T-{ticket_id:04d}"


def _ticket_id(text: Any) -> int:
    m = re.fullmatch(r"\s*(?:t-?)?0*(\d{1,9})\s*", str(text), re.IGNORECASE)
    if m is None:
        raise ToolFailed(f"{text!r} is not a ticket number like T-0042")
    return int(m[1])


def callcenter_tools(agent: Agent, db: Database) -> list[Tool]:
    async def create_ticket(args: dict[str, Any]) -> ToolResult:
        name, issue = args["name"].strip(), args["issue"].strip()
        if not name or not issue:
            raise ToolFailed("a ticket needs the customer's name and the issue")

        def create(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO tickets (agent_id, name, contact, issue, priority, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    agent.id,
                    name,
                    args.get("contact", ""),
                    issue,
                    args.get("priority", "normal"),
                    now_utc(),
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        ticket = await db.run(create)
        code = ticket_code(ticket)
        return tool_result(f"Ticket {code} opened", ticket=code, status="open")

    async def lookup_ticket(args: dict[str, Any]) -> ToolResult:
        ticket = _ticket_id(args["ticket"])

        def look(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT id, name, issue, priority, status, created_at FROM tickets"
                " WHERE id = ? AND agent_id = ?",
                (ticket, agent.id),
            ).fetchone()
            return dict(row) if row is not None else None

        found = await db.run(look)
        if found is None:
            raise ToolFailed(f"there is no ticket {ticket_code(ticket)}")
        found["ticket"] = ticket_code(found.pop("id"))
        return tool_result(f"Ticket {found['ticket']}: {found['status']}", **found)

    return [
        Tool(
            "create_ticket",
            "Open a support ticket for the customer's issue; read the ticket number back.",
            {
                "type": "object",
                "properties": {
                    "name": _TEXT,
                    "issue": _TEXT,
                    "contact": _TEXT,
                    "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                },
                "required": ["name", "issue"],
            },
            create_ticket,
            atomic=True,
        ),
        Tool(
            "lookup_ticket",
            "The status of a support ticket by its number (like T-0042).",
            {"type": "object", "properties": {"ticket": _TEXT}, "required": ["ticket"]},
            lookup_ticket,
        ),
    ]


def sales_tools(agent: Agent, db: Database, today: Today = dt.date.today) -> list[Tool]:
    async def quote_plan(args: dict[str, Any]) -> ToolResult:
        plan, seats = args["plan"], args["seats"]
        yearly = args.get("billing") == "yearly"
        monthly = PLANS[plan] * seats
        total = monthly * 10 if yearly else monthly
        per = "year" if yearly else "month"
        return tool_result(
            f"Quote: {plan.title()}, {seats} seats, ${total:,}/{per}",
            plan=plan,
            seats=seats,
            price_per_seat_month=PLANS[plan],
            total=total,
            per=per,
            currency="USD",
        )

    async def book_demo(args: dict[str, Any]) -> ToolResult:
        day = future_day(args["date"], today)
        time = slot_time(args["time"])
        if time not in slots(agent.opening_hours, agent.slot_minutes, day):
            raise ToolFailed(f"{spoken_day(day)} {time} is outside our hours")

        def book(conn: sqlite3.Connection) -> int | None:
            try:
                cur = conn.execute(
                    "INSERT INTO demos (agent_id, name, email, company, day, time, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        agent.id,
                        args["name"].strip(),
                        args.get("email", ""),
                        args.get("company", ""),
                        day.isoformat(),
                        time,
                        now_utc(),
                    ),
                )
            except sqlite3.IntegrityError:
                return None
            return cur.lastrowid

        demo = await db.run(book)
        if demo is None:
            raise ToolFailed(f"a demo is already booked on {spoken_day(day)} at {time}")
        return tool_result(
            f"Demo booked: {spoken_day(day)}, {time}", demo_id=demo, date=day.isoformat(), time=time
        )

    return [
        Tool(
            "quote_plan",
            "Price a plan for a number of seats (USD).",
            {
                "type": "object",
                "properties": {
                    "plan": {"type": "string", "enum": sorted(PLANS)},
                    "seats": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "billing": {"type": "string", "enum": ["monthly", "yearly"]},
                },
                "required": ["plan", "seats"],
            },
            quote_plan,
        ),
        Tool(
            "book_demo",
            "Book a product demo at a time within business hours.",
            {
                "type": "object",
                "properties": {
                    "name": _TEXT,
                    "email": _TEXT,
                    "company": _TEXT,
                    "date": {"type": "string", "description": "YYYY-MM-DD"},
                    "time": {"type": "string", "description": "HH:MM"},
                },
                "required": ["name", "date", "time"],
            },
            book_demo,
            atomic=True,
        ),
    ]


def persona_tools(agent: Agent, db: Database, today: Today = dt.date.today) -> list[Tool]:
    """The built-in tools of the agent's persona (none for ``generic``)."""
    from .appointments import receptionist_tools

    if agent.persona == "receptionist":
        return receptionist_tools(agent, db, today)
    if agent.persona == "callcenter":
        return callcenter_tools(agent, db)
    if agent.persona == "sales":
        return sales_tools(agent, db, today)
    return []


__all__ = ["PLANS", "callcenter_tools", "persona_tools", "sales_tools", "ticket_code"]
