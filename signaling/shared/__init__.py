"""State every worker and every host of one deployment must agree on.

Two things must hold across processes to stay correct: a token opens one
call (its nonce is spent once, wherever), and a client's rate limit is one
limit (not one per worker). ``SharedState`` is that contract:

- no sharing (one process): the app's own ``TokenVerifier`` memory and
  ``RateLimiter`` are already the whole truth; there is no ``SharedState``.
- ``--workers N`` on one host without Redis: ``SqliteState``, a small file
  the workers share (SQLite's locking makes each step atomic).
- ``REDIS_URL``: ``RedisState``, shared by every worker and host, which also
  keeps the registry of live calls (id, host, worker, started).

A backend that cannot be reached raises ``SharedStateUnavailable``: new
offers then get 503 with a plain reason, live calls go on untouched, and the
next offer tries again (the clients reconnect on their own).
"""

from __future__ import annotations

from typing import Protocol


class SharedStateUnavailable(Exception):
    """The shared state could not be reached; str() is safe for a log."""


class SharedState(Protocol):
    async def spend_nonce(self, nonce: bytes, expiry: int) -> bool:
        """Mark a token's nonce used until ``expiry`` (Unix seconds); False if
        it already was (anywhere)."""
        ...

    async def take_rate(self, client: str, per_minute: int) -> float:
        """One offer from ``client`` against its bucket of ``per_minute``:
        0.0 to go ahead, else the seconds until it may (nothing spent)."""
        ...

    async def close(self) -> None: ...


# The token bucket both backends run, so a limit means the same everywhere:
# ``per_minute`` tokens, refilled continuously, bursts up to ``per_minute``.
def bucket_step(tokens: float, elapsed_s: float, per_minute: int) -> tuple[float, float]:
    """(tokens left, seconds to wait) after one request; pure."""
    rate = per_minute / 60.0
    tokens = min(float(per_minute), tokens + max(0.0, elapsed_s) * rate)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate
