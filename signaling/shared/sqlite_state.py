"""Shared state for the workers of one host, in a small SQLite file.

The parent of ``--workers N`` creates the file in its private temporary
directory; each worker opens it. Every step is one short ``BEGIN IMMEDIATE``
transaction, so two workers can never both spend a nonce or both take a
client's last token. The calls are a few hundred microseconds of file work;
they run in a thread so no call's 20 ms audio frames wait on a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from signaling.shared import SharedStateUnavailable, bucket_step

BUSY_TIMEOUT_S = 2.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS used_nonces (nonce BLOB PRIMARY KEY, expiry INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rate_buckets (
    client TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_buckets_updated ON rate_buckets (updated);
"""
# Buckets idle this long are full again: forget them (memory stays bounded).
FORGET_IDLE_S = 120.0


class SqliteState:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()  # one connection, used from worker threads
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _run(self, step: Callable[[sqlite3.Connection], object]) -> object:
        with self._lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = step(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise SharedStateUnavailable(f"sqlite {self._path.name}: {exc}") from exc

    async def spend_nonce(self, nonce: bytes, expiry: int) -> bool:
        now = self._clock()

        def step(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM used_nonces WHERE expiry <= ?", (now,))
            cur = db.execute(
                "INSERT OR IGNORE INTO used_nonces (nonce, expiry) VALUES (?, ?)", (nonce, expiry)
            )
            return cur.rowcount == 1

        return bool(await asyncio.to_thread(self._run, step))

    async def take_rate(self, client: str, per_minute: int) -> float:
        if per_minute <= 0:
            return 0.0
        now = self._clock()

        def step(db: sqlite3.Connection) -> float:
            db.execute("DELETE FROM rate_buckets WHERE updated < ?", (now - FORGET_IDLE_S,))
            row = db.execute(
                "SELECT tokens, updated FROM rate_buckets WHERE client = ?", (client,)
            ).fetchone()
            tokens, updated = (float(per_minute), now) if row is None else row
            tokens, wait = bucket_step(tokens, now - updated, per_minute)
            db.execute(
                "INSERT OR REPLACE INTO rate_buckets (client, tokens, updated) VALUES (?, ?, ?)",
                (client, tokens, now),
            )
            return wait

        return float(await asyncio.to_thread(self._run, step))  # type: ignore[arg-type]

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
