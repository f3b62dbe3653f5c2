"""Tools an agent can call: what each one is, and one call run safely.

A ``Tool`` is a name, a description and a JSON schema for its arguments (what
the model sees) and an async ``run`` (what the server does). ``Toolbox`` is
one agent's set: it offers their specs to the model and runs one call the
way every call must run, whoever wrote the tool: arguments parsed and
checked against the schema first, a deadline, and any failure turned into an
error result the model can explain ("the booking system did not answer"),
never an exception that ends the turn.

A tool that writes (a booking) is marked ``atomic``: once started it runs to
its end even when the turn is cut short (barge-in), so a record is written
whole or not at all; reads and web requests are simply cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from media_server.types import ToolCall

log = logging.getLogger(__name__)

DEFAULT_TOOL_TIMEOUT_S = 10.0
MAX_RESULT_CHARS = 4000  # what goes back to the model from one call
# Atomic calls still running after their turn was cut (held so they finish).
_finishing: set[asyncio.Future[Any]] = set()


@dataclass(frozen=True, slots=True)
class ToolResult:
    """``content``: what the model reads; ``summary``: one line for the page."""

    ok: bool
    content: str
    summary: str

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(False, json.dumps({"error": message}), message)


class ToolFailed(Exception):
    """A tool could not do its job; the message is said to the model."""


Runner = Callable[[dict[str, Any]], Awaitable[ToolResult]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Runner
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    atomic: bool = False  # writes: runs to its end once started (see module doc)
    # False while the tool cannot be called (its MCP server is restarting).
    available: Callable[[], bool] = field(default=lambda: True)
    # Runs only once the caller has heard what was said before it (a transfer
    # cuts the line: "I'm putting you through" must reach them first).
    heard_first: bool = False

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def check_schema(schema: Any, where: str) -> None:
    """Raise ValueError if ``schema`` is not a usable JSON schema for arguments."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ValueError(f"{where}: parameters must be a JSON schema of type object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        problem = exc.message
        raise ValueError(f"{where}: parameters is not a valid JSON schema ({problem})") from None


class Toolbox:
    """One agent's tools (shared by its sessions; holds no per-call state)."""

    def __init__(self, tools: Iterable[Tool] = (), *, base: Toolbox | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self._base = base
        for tool in tools:
            self.add(tool)

    def with_tools(self, *tools: Tool) -> Toolbox:
        """A box for one call: this one's tools (read live: an MCP server's
        arrive late) plus ``tools``, which hide any of this box's of the
        same name (a call's own tool wins); this box is left as it was."""
        return Toolbox(tools, base=self)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"two tools are named {tool.name!r}")
        self._tools[tool.name] = tool

    def _all(self) -> dict[str, Tool]:
        if self._base is None:
            return self._tools
        # A base tool named like one of ours stays hidden: ours win.
        return {**self._base._all(), **self._tools}

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: str) -> bool:
        return name in self._tools or (self._base is not None and name in self._base)

    def wants_heard(self, calls: Iterable[ToolCall]) -> bool:
        """Whether any of ``calls`` must wait until the words before it were heard."""
        tools = self._all()
        return any(c.name in tools and tools[c.name].heard_first for c in calls)

    def specs(self) -> tuple[dict[str, Any], ...]:
        """What the model is offered now (tools that cannot run are left out)."""
        return tuple(t.spec() for t in self._all().values() if t.available())

    async def call(self, call: ToolCall) -> ToolResult:
        """Run one call to its result; never raises but CancelledError."""
        tool = self._all().get(call.name)
        if tool is None:
            return ToolResult.error(f"there is no tool named {call.name!r}")
        if not tool.available():
            return ToolResult.error(f"{call.name} is unavailable right now; try again later")
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return ToolResult.error(f"the arguments of {call.name} are not valid JSON")
        if not isinstance(arguments, dict):
            return ToolResult.error(f"the arguments of {call.name} must be a JSON object")
        problem = _schema_problem(tool.parameters, arguments)
        if problem:
            return ToolResult.error(f"bad arguments for {call.name}: {problem}")
        work = asyncio.ensure_future(_within(tool, arguments))
        if tool.atomic:
            # Cut short, the turn stops waiting; the write still ends whole
            # (bounded by the tool's deadline).
            _finishing.add(work)
            work.add_done_callback(_finishing.discard)
            return await asyncio.shield(work)
        return await work


async def _within(tool: Tool, arguments: dict[str, Any]) -> ToolResult:
    try:
        async with asyncio.timeout(tool.timeout_s):
            result = await tool.run(arguments)
    except TimeoutError:
        log.warning("tool %s: no answer within %gs", tool.name, tool.timeout_s)
        return ToolResult.error(f"{tool.name} did not answer within {tool.timeout_s:g} s")
    except ToolFailed as exc:
        return ToolResult.error(str(exc))
    except Exception:
        log.exception("tool %s crashed", tool.name)
        return ToolResult.error(f"{tool.name} failed")
    if len(result.content) > MAX_RESULT_CHARS:
        result = ToolResult(result.ok, result.content[:MAX_RESULT_CHARS] + "…", result.summary)
    return result


def _schema_problem(schema: dict[str, Any], arguments: dict[str, Any]) -> str:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(arguments)
    )
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message
