"""What lets agents act, for the whole process: the database, each agent's
tool box (persona tools, HTTP tools, MCP servers' tools) and the
conversation records. One ``AgentActing`` per process, opened at start and
closed at the end; each session gets its ``SessionActing``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from media_server.agents import Agent
from media_server.store import Database
from media_server.store.records import SessionRecord

from .desk import persona_tools
from .http_tool import HttpTools
from .mcp_client import McpServers
from .registry import Toolbox

log = logging.getLogger(__name__)


@dataclass
class SessionActing:
    tools: Toolbox | None
    record: SessionRecord
    # The page's key to its own record (GET /api/sessions/{id}); only its hash is stored.
    record_key: str


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AgentActing:
    def __init__(
        self, db: Database, toolboxes: dict[str, Toolbox], http: HttpTools, mcp: McpServers
    ) -> None:
        self.db = db
        self._toolboxes = toolboxes
        self._http = http
        self._mcp = mcp

    @classmethod
    async def open(
        cls, database_url: str, agents: Mapping[str, Agent], *, today=dt.date.today
    ) -> AgentActing:
        db = await Database.open(database_url)
        http = HttpTools()
        mcp = McpServers()
        try:
            toolboxes: dict[str, Toolbox] = {}
            for agent in agents.values():
                box = Toolbox(persona_tools(agent, db, today))
                for spec in agent.tools:
                    box.add(http.tool(spec))
                for server in agent.mcp:
                    await mcp.add(agent.id, server, box)
                toolboxes[agent.id] = box
        except BaseException:
            await mcp.close()
            await http.close()
            await db.close()
            raise
        tools = ", ".join(f"{a}={len(b)}" for a, b in toolboxes.items()) or "none"
        log.info(
            "agents' database %s (schema %d); tools: %s",
            db.path,
            db.schema_version,
            tools,
            extra={
                "event": "agents_database",
                "fields": {"path": str(db.path), "schema": db.schema_version, "tools": tools},
            },
        )
        return cls(db, toolboxes, http, mcp)

    def tools_of(self, agent_id: str) -> Toolbox | None:
        box = self._toolboxes.get(agent_id)
        return box if box else None

    def for_session(self, session_id: str, agent: Agent) -> SessionActing:
        key = secrets.token_urlsafe(24)
        record = SessionRecord(self.db, session_id, agent.id, key_hash(key))
        return SessionActing(self.tools_of(agent.id), record, key)

    async def close(self) -> None:
        await self._mcp.close()
        await self._http.close()
        await self.db.close()
