"""Conversation records: each session's turns, in the agents' database.

A session's ``SessionRecord`` is the one writer of its rows. Turns are handed
over without waiting (``turn()``, called from the turn's own code) into a
bounded queue that one task writes out; a database too slow to keep up loses
records (logged), never the call's audio. ``close()`` writes what is left
(within ``CLOSE_TIMEOUT_S``) and the session's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .db import Database, StoreError

log = logging.getLogger(__name__)

QUEUE_BOUND = 64  # turns waiting to be written
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class TurnRecord:
    turn_id: int
    outcome: str  # completed | interrupted | error | dropped
    heard: str  # what the person said
    reply: str  # what the agent said (of an interrupted turn: what was heard)
    tools: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class SessionRecord:
    def __init__(self, db: Database, session_id: str, agent_id: str, key_hash: str) -> None:
        self._db = db
        self.session_id = session_id
        self._queue: asyncio.Queue[TurnRecord | None] = asyncio.Queue(QUEUE_BOUND)
        started = _now()
        self._writer = asyncio.create_task(
            self._write(agent_id, started, key_hash), name=f"record-{session_id}"
        )

    def turn(self, record: TurnRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            log.warning("session %s: record of turn %s dropped", self.session_id, record.turn_id)

    async def _write(self, agent_id: str, started: str, key_hash: str) -> None:
        sid = self.session_id

        def begin(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO sessions (id, agent_id, started_at, key_hash)"
                " VALUES (?, ?, ?, ?)",
                (sid, agent_id, started, key_hash),
            )

        await self._db.run(begin)
        while (record := await self._queue.get()) is not None:
            row = (
                sid,
                record.turn_id,
                record.outcome,
                record.heard,
                record.reply,
                json.dumps(record.tools),
                json.dumps(record.metrics),
                _now(),
            )
            await self._db.run(
                lambda conn, row=row: conn.execute(
                    "INSERT INTO turns (session_id, turn_id, outcome, heard, reply, tools,"
                    " metrics, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            )

    async def close(self, reason: str) -> None:
        """Write what is queued and the session's end; idempotent."""
        if self._writer.done():
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(self._writer)
                await self._db.run(
                    lambda conn: conn.execute(
                        "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
                        (_now(), reason, self.session_id),
                    )
                )
        except (TimeoutError, StoreError) as exc:
            log.warning("session %s: record not finished (%s)", self.session_id, exc)
        finally:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer


async def transcript(db: Database, session_id: str, key_hash: str | None) -> dict[str, Any] | None:
    """A session's record as JSON; None if there is none or ``key_hash`` is
    not its key's (None: the caller proved access another way)."""

    def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
        session = conn.execute(
            "SELECT id, agent_id, started_at, ended_at, end_reason, key_hash FROM sessions"
            " WHERE id = ?",
            (session_id,),
        ).fetchone()
        if session is None:
            return None
        if key_hash is not None and not hmac.compare_digest(session["key_hash"], key_hash):
            return None
        session = {k: session[k] for k in session.keys() if k != "key_hash"}
        turns = conn.execute(
            "SELECT turn_id, outcome, heard, reply, tools, metrics, at FROM turns"
            " WHERE session_id = ? ORDER BY id",
            (session_id,),
        ).fetchall()
        return {
            **session,
            "turns": [
                {
                    **dict(t),
                    "tools": json.loads(t["tools"]),
                    "metrics": json.loads(t["metrics"]),
                }
                for t in turns
            ],
        }

    return await db.run(read)
