"""MCP servers as tool sources, through the official ``mcp`` package.

Each configured server (``[[agents.ID.mcp]]``) has one ``McpLink``: a task
that owns the connection (a child process over stdio, or streamable HTTP),
lists the server's tools into the agent's tool box and keeps the link
alive. The MCP SDK's transports are anyio context managers that must be
entered and left in one task; that task is the link's.

A server that dies (its process exits, its pipe breaks, a ping gets no
answer) is connected again with a growing pause; meanwhile its tools say
they are unavailable, so the model is not offered them and a call already
made gets an error result it can explain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from .config import McpServerSpec
from .registry import Tool, Toolbox, ToolFailed, ToolResult, check_schema

log = logging.getLogger(__name__)

PING_EVERY_S = 2.0
FIRST_CONNECT_S = 10.0  # how long start-up waits for a server's tool list
RESTART_PAUSES_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class McpLink:
    def __init__(self, spec: McpServerSpec, box: Toolbox, label: str) -> None:
        self.spec = spec
        self._box = box
        self.label = label
        self._session: Any = None  # mcp.ClientSession while connected
        self._listed = asyncio.Event()
        self._dead = asyncio.Event()  # a call saw the link break: reconnect now
        self.connections = 0  # how many times it connected (restarts + 1)
        # The server's stderr is its own business; it must not fill our log.
        self._errlog = open(os.devnull, "w")
        self._task = asyncio.create_task(self._keep(), name=f"mcp-{label}")

    @property
    def available(self) -> bool:
        return self._session is not None

    async def wait_listed(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._listed.wait()
        return self._listed.is_set()

    def _transport(self) -> Any:
        if self.spec.url:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(self.spec.url)
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=self.spec.command, args=list(self.spec.args), env=dict(self.spec.env) or None
        )
        return stdio_client(params, errlog=self._errlog)

    async def _keep(self) -> None:
        failures = 0
        while True:
            try:
                await self._connected_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                log.warning("MCP %s: link down (%s)", self.label, _reason(exc))
            finally:
                self._session = None
            pause = RESTART_PAUSES_S[min(failures, len(RESTART_PAUSES_S) - 1)]
            failures += 1
            await asyncio.sleep(pause)

    async def _connected_once(self) -> None:
        from mcp import ClientSession

        async with self._transport() as streams, ClientSession(streams[0], streams[1]) as session:
            async with asyncio.timeout(FIRST_CONNECT_S):
                await session.initialize()
                listing = await session.list_tools()
            self._add_tools(listing.tools)
            self._dead.clear()
            self._session = session
            self.connections += 1
            self._listed.set()
            log.info("MCP %s: connected, %d tools", self.label, len(listing.tools))
            while not self._dead.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_EVERY_S):
                        await self._dead.wait()
                if not self._dead.is_set():
                    async with asyncio.timeout(PING_EVERY_S):
                        await session.send_ping()
            raise ConnectionError("a call found the server gone")

    def _add_tools(self, tools: list[Any]) -> None:
        for t in tools:
            name = t.name if t.name not in self._box else f"{self.spec.name}_{t.name}"
            if name in self._box:
                continue  # listed again after a restart: already offered
            schema = t.input_schema or {"type": "object", "properties": {}}
            try:
                check_schema(schema, f"MCP {self.label} tool {t.name}")
            except ValueError as exc:
                log.warning("%s: left out", exc)
                continue
            self._box.add(
                Tool(
                    name,
                    t.description or t.title or t.name,
                    schema,
                    self._runner(t.name),
                    timeout_s=self.spec.timeout_s,
                    available=lambda: self.available,
                )
            )

    def _runner(self, remote_name: str) -> Any:
        async def run(arguments: dict[str, Any]) -> ToolResult:
            session = self._session
            if session is None:
                raise ToolFailed(f"{remote_name} is unavailable right now (its server restarts)")
            try:
                result = await session.call_tool(remote_name, arguments)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._dead.set()  # the ping loop reconnects at once
                raise ToolFailed(f"{remote_name} failed: {_reason(exc)}") from None
            text = " ".join(
                c.text for c in result.content if getattr(c, "type", "") == "text"
            ).strip()
            if result.is_error:
                raise ToolFailed(text or f"{remote_name} failed")
            if result.structured_content is not None:
                content = json.dumps(result.structured_content)
            else:
                content = json.dumps(text)
            return ToolResult(True, content, text[:200] or f"{remote_name}: done")

        return run

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._errlog.close()


class McpServers:
    """Every MCP link of the process."""

    def __init__(self) -> None:
        self.links: list[McpLink] = []

    async def add(self, agent_id: str, spec: McpServerSpec, box: Toolbox) -> McpLink:
        link = McpLink(spec, box, f"{agent_id}/{spec.name}")
        self.links.append(link)
        if not await link.wait_listed(FIRST_CONNECT_S):
            log.warning("MCP %s: not up yet; its tools come when it is", link.label)
        return link

    async def close(self) -> None:
        for link in self.links:
            await link.close()
        self.links.clear()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}"[:200]
