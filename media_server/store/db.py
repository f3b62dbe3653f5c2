"""One SQLite database (``DATABASE_URL``), its schema version, and transactions.

Every change the agents make is one function run as one ``BEGIN IMMEDIATE``
transaction on the store's own thread: a booking is written whole or not at
all, even when the turn that asked for it is cut short (the thread finishes
the transaction; only the waiting stops). The thread is the connection's one
owner, so transactions of one process never interleave; other processes
(``--workers``) wait on SQLite's lock (``BUSY_TIMEOUT_S``).

The schema is versioned with ``PRAGMA user_version``: ``MIGRATIONS[i]`` takes
a database from version i to i+1, in one transaction, at open. Only SQLite
is built in; the SQL is plain so another engine can follow by URL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_S = 5.0
DEFAULT_DATABASE_URL = "sqlite:///data/voice-agent.db"

MIGRATIONS: tuple[str, ...] = (
    # 1: what the built-in persona tools keep, and the conversation records.
    """
    CREATE TABLE appointments (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        day TEXT NOT NULL,            -- YYYY-MM-DD
        time TEXT NOT NULL,           -- HH:MM
        name TEXT NOT NULL,
        phone TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'booked',  -- booked | cancelled
        created_at TEXT NOT NULL
    );
    -- No double booking, whoever writes: one booked appointment a slot.
    CREATE UNIQUE INDEX appointments_one_a_slot
        ON appointments (agent_id, day, time) WHERE status = 'booked';
    CREATE INDEX appointments_by_name ON appointments (agent_id, name);
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        name TEXT NOT NULL,
        contact TEXT NOT NULL DEFAULT '',
        issue TEXT NOT NULL,
        priority TEXT NOT NULL DEFAULT 'normal',
        status TEXT NOT NULL DEFAULT 'open',
        created_at TEXT NOT NULL
    );
    CREATE TABLE demos (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        name TEXT NOT NULL,
        email TEXT NOT NULL DEFAULT '',
        company TEXT NOT NULL DEFAULT '',
        day TEXT NOT NULL,
        time TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX demos_one_a_slot ON demos (agent_id, day, time);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        end_reason TEXT,
        key_hash TEXT NOT NULL        -- sha256 of the page's key to this record
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        turn_id INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        heard TEXT NOT NULL,          -- what the person said (the transcript)
        reply TEXT NOT NULL,          -- what the agent said (what was heard of it)
        tools TEXT NOT NULL,          -- JSON list of the calls it ran
        metrics TEXT NOT NULL,        -- JSON timings, ms
        at TEXT NOT NULL
    );
    CREATE INDEX turns_by_session ON turns (session_id, id);
    """,
)


class StoreError(Exception):
    """The database could not be used (the message names it, never a secret)."""


def database_path(url: str) -> Path:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    if not url.startswith("sqlite:///"):
        raise ValueError("only sqlite:/// URLs are supported (e.g. sqlite:///data/voice-agent.db)")
    path = url.removeprefix("sqlite:///")
    if not path:
        raise ValueError("the URL names no file (e.g. sqlite:///data/voice-agent.db)")
    return Path(path)


class Database:
    """Open with ``await Database.open(url)``; ``await db.run(fn)`` runs
    ``fn(connection)`` in one transaction; ``await db.close()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, url: str) -> Database:
        db = cls(database_path(url))
        try:
            await db._call(db._connect)
        except BaseException:
            await db.close()
            raise
        return db

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"database {self.path}: cannot open ({exc})") from exc
        self._conn = conn
        self._transaction(_migrate)

    def _transaction(self, step: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError("the database is closed")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = step(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path.name}: {exc}") from exc

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def run(self, step: Callable[[sqlite3.Connection], T]) -> T:
        """``step`` in one transaction on the store's thread. Cancelling the
        caller stops the wait, not the transaction."""
        return await self._call(lambda: self._transaction(step))

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    async def close(self) -> None:
        """Idempotent."""
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await self._call(shut)
        finally:
            self._thread.shutdown(wait=True)


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the database has schema version {version}, newer than this server's "
            f"{len(MIGRATIONS)}; upgrade the server"
        )
    for number in range(version, len(MIGRATIONS)):
        for statement in _statements(MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


def _statements(script: str) -> list[str]:
    """A migration's statements (executescript would commit our transaction)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
