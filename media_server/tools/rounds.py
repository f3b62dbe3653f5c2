"""One round of tool calls within a turn: run them, tell the page, answer the model.

The model may ask for several calls at once; they run side by side. The page
sees each call start (``tool_call``) and end (``tool_result``). If any is
still running after ``FILLER_AFTER_S`` the caller's ``on_slow`` is called
once (the turn speaks a short filler). Cancelling the round (barge-in)
cancels every call still running, except atomic ones (registry.py), which
end whole.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from media_server import protocol
from media_server.types import ChatMessage, ToolCall

from .registry import Toolbox, ToolResult

MAX_ROUNDS = 5  # model -> tools -> model exchanges in one turn
FILLER_AFTER_S = 1.0
FILLER = "One moment, let me check."
GAVE_UP = "Sorry, I could not finish that just now."


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as the conversation record keeps it."""

    call_id: str
    name: str
    arguments: Any
    ok: bool
    summary: str
    ms: float

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "ok": self.ok,
            "summary": self.summary,
            "ms": round(self.ms, 1),
        }


def shown_arguments(call: ToolCall) -> Any:
    """The call's arguments for the page: parsed if they parse."""
    try:
        return json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return call.arguments


async def run_round(
    toolbox: Toolbox,
    calls: Sequence[ToolCall],
    *,
    send: Callable[[str], None],
    on_slow: Callable[[], Awaitable[None]],
    records: list[CallRecord],
) -> list[ChatMessage]:
    """Run ``calls``; the ``tool`` messages that answer them, in call order."""
    started = time.monotonic()

    async def one(call: ToolCall) -> ToolResult:
        result = await toolbox.call(call)
        send(protocol.tool_result(call.id, result.ok, result.summary))
        records.append(
            CallRecord(
                call.id,
                call.name,
                shown_arguments(call),
                result.ok,
                result.summary,
                (time.monotonic() - started) * 1000,
            )
        )
        return result

    for call in calls:
        send(protocol.tool_call(call.id, call.name, shown_arguments(call)))
    tasks = [asyncio.ensure_future(one(call)) for call in calls]
    try:
        _, pending = await asyncio.wait(tasks, timeout=FILLER_AFTER_S)
        if pending:
            await on_slow()
        results = await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    return [
        ChatMessage("tool", result.content, tool_call_id=call.id)
        for call, result in zip(calls, results, strict=True)
    ]
