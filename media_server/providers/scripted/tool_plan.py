"""What the scripted engine does next in a turn: a tool call, or words.

A turn may take rounds (tools run between them): the receptionist books
(``book_appointment``), cancels (``find_appointments`` then
``cancel_appointment``) or looks up (``find_appointments``), then words the
outcome. Tools the agent is not offered are never called; the reply then is
the scripted one alone, as before tools existed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from media_server.providers.scripted.acting import (
    ISSUES,
    booking_call,
    call,
    demo_call,
    find_request,
    resolve_day,
    tool_exchange,
    tool_results,
)
from media_server.providers.scripted.compose import compose
from media_server.tools.hours import parse_day, spoken_day
from media_server.types import ChatMessage, ToolCall


def plan(
    messages: Sequence[ChatMessage], persona: str, offered: frozenset[str], today: dt.date
) -> str | ToolCall:
    calls, results = tool_exchange(messages)
    words = [m for m in messages if m.role != "tool" and not m.tool_calls]
    text, st = compose(words, persona)
    if not offered:
        return text
    if persona in ("callcenter", "sales"):
        text = _real_ticket_in_goodbye(text, st.done, messages)
        return _desk(text, st.action, calls, results, offered, today)
    if persona != "receptionist":
        return text
    action = st.action
    if not calls:
        if "find_appointments" in offered and action is None:
            found = find_request(messages)
            if found is not None:
                return found
        if action is None:
            return text
        kind, slots = action
        if kind == "book" and "book_appointment" in offered:
            return booking_call(slots, today) or text
        if kind == "cancel" and {"find_appointments", "cancel_appointment"} <= offered:
            return call("find_appointments", name=slots.get("name", ""))
        return text
    last, result = calls[-1].name, results[-1] if results else {}
    if "error" in result:
        return f"I'm sorry, {result['error'].rstrip('.')}. What would you like to do?"
    if last == "find_appointments":
        return _after_find(result, action, today, text)
    return text  # booked or cancelled: the scripted confirmation is now true


def _real_ticket_in_goodbye(text: str, done: str | None, messages: Sequence[ChatMessage]) -> str:
    """The goodbye repeats the ticket number: the one the tool opened."""
    prefix = "Your ticket number is "
    if not done or not done.startswith(prefix):
        return text
    tickets = [r["ticket"] for r in tool_results(messages) if isinstance(r.get("ticket"), str)]
    if not tickets:
        return text
    return text.replace(done, f"{prefix}{' '.join(tickets[-1].replace('-', ''))}.")


def _desk(
    text: str,
    action: tuple[str, dict[str, str]] | None,
    calls: list[ToolCall],
    results: list[dict],
    offered: frozenset[str],
    today: dt.date,
) -> str | ToolCall:
    """The call center opens a real ticket; sales books a real demo."""
    if action is None:
        return text
    kind, slots = action
    if not calls:
        if kind == "ticket" and "create_ticket" in offered:
            issue = ISSUES.get(slots["issue"], slots["issue"])
            return call("create_ticket", name=slots.get("name") or "Caller", issue=issue)
        if kind == "demo" and "book_demo" in offered:
            return demo_call(slots, today) or text
        return text
    result = results[-1] if results else {}
    if "error" in result:
        return f"I'm sorry, {result['error'].rstrip('.')}. What would you like to do?"
    if kind == "ticket" and "ticket" in result:
        return text.replace(slots["spoken"], " ".join(result["ticket"].replace("-", "")))
    return text


def _after_find(
    result: dict, action: tuple[str, dict[str, str]] | None, today: dt.date, text: str
) -> str | ToolCall:
    found = result.get("appointments") or []
    if action is not None and action[0] == "cancel":
        day = resolve_day(action[1].get("day", ""), today)
        match = [a for a in found if day is None or a["day"] == day.isoformat()]
        if match:
            return call("cancel_appointment", appointment_id=match[0]["id"])
        return (
            "I couldn't find an appointment under that name on that day. "
            "Could you check the name and the day for me?"
        )
    if not found:
        return (
            "I couldn't find an upcoming appointment under that name. Would you like to book one?"
        )
    first = found[0]
    when = f"{spoken_day(parse_day(first['day']))} at {first['time']}"
    more = f" You have {len(found) - 1} more after that." if len(found) > 1 else ""
    return f"I found it: {first['name']}, {when}.{more} Is there anything else I can help with?"
