"""What workers share without Redis: SqliteState, two instances on one file
standing for two worker processes (the locking is SQLite's, across processes
as across connections)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.limits import RateLimiter
from signaling.shared import bucket_step
from signaling.shared.sqlite_state import SqliteState


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workers(tmp_path: Path):
    clock = Clock()
    states = [SqliteState(tmp_path / "shared.db", clock=clock) for _ in range(2)]
    yield states, clock


def test_the_bucket_is_the_one_a_single_process_runs() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    tokens, last = 3.0, 0.0
    for t in (0.0, 0.1, 0.2, 0.3, 5.0, 20.0, 20.1, 40.0):
        now[0] = t
        tokens, wait = bucket_step(tokens, t - last, 3)
        last = t
        assert wait == pytest.approx(limiter.acquire("a"))


async def test_a_token_opens_one_call_whichever_worker_sees_it(workers) -> None:
    (a, b), clock = workers
    expiry = int(clock.now) + 60
    assert await a.spend_nonce(b"n1", expiry) is True
    assert await b.spend_nonce(b"n1", expiry) is False
    assert await a.spend_nonce(b"n1", expiry) is False
    assert await b.spend_nonce(b"n2", expiry) is True
    clock.now = expiry + 1  # expired tokens are refused anyway: their nonces are forgotten
    assert await a.spend_nonce(b"n3", expiry + 60) is True
    db = a._connect()
    assert db.execute("SELECT count(*) FROM used_nonces").fetchone()[0] == 1
    for state in (a, b):
        await state.close()


async def test_a_client_has_one_rate_limit_across_workers(workers) -> None:
    (a, b), clock = workers
    assert [await s.take_rate("10.0.0.1", 2) for s in (a, b)] == [0.0, 0.0]
    wait = await a.take_rate("10.0.0.1", 2)
    assert wait == pytest.approx(30.0)  # one token every 30 s at 2 a minute
    assert await b.take_rate("10.0.0.2", 2) == 0.0  # another client: its own bucket
    clock.now += 30.0
    assert await b.take_rate("10.0.0.1", 2) == 0.0
    assert await a.take_rate("10.0.0.9", 0) == 0.0  # 0: no limit
    for state in (a, b):
        await state.close()
