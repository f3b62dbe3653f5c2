"""The offline agent acts through the same tools a language model calls.

When the scripted receptionist confirms a booking or a cancellation, or is
asked about an appointment, the scripted engine does not just say so: it
calls ``book_appointment`` / ``find_appointments`` / ``cancel_appointment``
(the turn runs them, as for any model), then words its reply from their
results. So booking by voice or text with no keys writes the same rows, and
a later call finds them.

Pure: spoken day and time phrases ("next Tuesday", "2:30 pm") become a date
and an "HH:MM" against a given today.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from media_server.providers.scripted.details import find_name
from media_server.providers.scripted.reading import read_turn, stems
from media_server.types import ChatMessage, ToolCall

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_PART_TIMES = {"morning": "09:00", "afternoon": "14:00", "evening": "17:00"}
_FIND = stems(
    r"when is my appoint|do i have an? appoint|(?:check|find|confirm) my (?:appoint|booking)|"
    r"what time is my appoint|my appointments?\b.*\b(?:when|what time)"
)
ASK_NAME_TO_FIND = "Sure, I can look that up. What name is the appointment under?"


def resolve_day(phrase: str, today: dt.date) -> dt.date | None:
    p = phrase.strip().lower()
    if p == "today":
        return today
    if p == "tomorrow":
        return today + dt.timedelta(days=1)
    if p == "the day after tomorrow":
        return today + dt.timedelta(days=2)
    weekday = p.removeprefix("next ")
    if weekday in _DAYS:
        ahead = (_DAYS.index(weekday) - today.weekday()) % 7 or 7
        return today + dt.timedelta(days=ahead + (7 if p.startswith("next ") and ahead < 7 else 0))
    if m := re.fullmatch(r"([a-z]+) (\d{1,2})", p):
        if m[1] in _MONTHS:
            return _next_date(today, _MONTHS.index(m[1]) + 1, int(m[2]))
    if m := re.fullmatch(r"the (\d{1,2})th", p):
        month, year = today.month, today.year
        if int(m[1]) < today.day:
            month, year = (1, year + 1) if month == 12 else (month + 1, year)
        return _safe_date(year, month, int(m[1]))
    return None


def resolve_time(phrase: str) -> str | None:
    p = phrase.strip().lower()
    if p == "noon":
        return "12:00"
    if p.startswith("in the "):
        return _PART_TIMES.get(p.removeprefix("in the "))
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))? (am|pm)", p)
    if m is None:
        return None
    hour = int(m[1]) % 12 + (12 if m[3] == "pm" else 0)
    return f"{hour:02d}:{m[2] or '00'}"


def _next_date(today: dt.date, month: int, day: int) -> dt.date | None:
    date = _safe_date(today.year, month, day)
    if date is not None and date < today:
        date = _safe_date(today.year + 1, month, day)
    return date


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def call(tool: str, /, **arguments: Any) -> ToolCall:
    return ToolCall(f"scripted-{uuid.uuid4().hex[:12]}", tool, json.dumps(arguments))


def booking_call(slots: dict[str, str], today: dt.date) -> ToolCall | None:
    """The call that makes a confirmed booking real (None if the day or time
    cannot be pinned down; the spoken confirmation then stands alone)."""
    day = resolve_day(slots.get("day", ""), today)
    time = resolve_time(slots.get("time", ""))
    if day is None or time is None or not slots.get("name"):
        return None
    reason = slots.get("reason", "").removeprefix("for ").removeprefix("about ")
    return call(
        "book_appointment",
        date=day.isoformat(),
        time=time,
        name=slots["name"],
        phone=slots.get("phone", ""),
        reason=reason,
    )


# The call center's issues, as a ticket names them.
ISSUES = {
    "login": "Cannot sign in (password reset did not help)",
    "slow": "The app is slow (the usual fixes did not help)",
    "crash": "The app crashes (the usual fixes did not help)",
    "internet": "Internet or wifi trouble (the usual fixes did not help)",
}


def demo_call(slots: dict[str, str], today: dt.date) -> ToolCall | None:
    """The call that books a confirmed demo (None if its time is vague)."""
    day = resolve_day(slots.get("day", ""), today)
    time = resolve_time(slots.get("time", ""))
    if day is None or time is None:
        return None
    return call(
        "book_demo",
        name=slots.get("name") or "Caller",
        date=day.isoformat(),
        time=time,
    )


def find_request(messages: Sequence[ChatMessage]) -> ToolCall | str | None:
    """A request to look up an appointment: the call, or the question for the
    name it needs; None if the last turn is not one."""
    users = [m for m in messages if m.role == "user"]
    if not users:
        return None
    assistants = [m.content for m in messages if m.role == "assistant" and m.content]
    previous = assistants[-1] if assistants else ""
    said = read_turn(users[-1].content, previous)
    name = find_name(said)
    if previous.endswith(ASK_NAME_TO_FIND) and (name or said.text):
        return call("find_appointments", name=name or said.text.title())
    if not said.has(_FIND):
        return None
    return call("find_appointments", name=name) if name else ASK_NAME_TO_FIND


def tool_exchange(messages: Sequence[ChatMessage]) -> tuple[list[ToolCall], list[dict]]:
    """The calls made since the last user message and their parsed results."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    calls = [c for m in messages[last_user + 1 :] for c in m.tool_calls]
    results = [_parsed(m.content) for m in messages[last_user + 1 :] if m.role == "tool"]
    return calls, results


def tool_results(messages: Sequence[ChatMessage]) -> list[dict]:
    """Every tool result in the conversation, parsed, oldest first."""
    return [_parsed(m.content) for m in messages if m.role == "tool"]


def _parsed(content: str) -> dict:
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return {"error": content}
    return value if isinstance(value, dict) else {"value": value}
