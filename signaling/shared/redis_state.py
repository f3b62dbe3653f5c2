"""Shared state in Redis: every worker of every host agrees through it.

- A token's nonce: ``SET key 1 NX EXAT expiry`` — spent once, anywhere,
  forgotten by Redis when the token could no longer be used anyway.
- A client's rate: the same token bucket as one process runs, as a Lua
  script on Redis's own clock, so hosts with skewed clocks share one limit.
- Live calls: one key a call (id, host, worker, started) with a short TTL
  that each worker refreshes for the calls it owns; a host or worker that
  dies stops refreshing and its calls drop out of the registry by themselves.

Every command has a short deadline: an unreachable Redis costs an offer
``CONNECT_TIMEOUT_S``, not a hang, and raises ``SharedStateUnavailable``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.shared import SharedStateUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 0.5
COMMAND_TIMEOUT_S = 1.0
PREFIX = "voice-agent:"
SESSION_TTL_S = 30  # a call's registry entry outlives its worker by this much at most

# KEYS[1] bucket; ARGV per_minute. Returns the wait in seconds as a string
# (Lua numbers become integers on the way out).
_TAKE_RATE = """
local per_minute = tonumber(ARGV[1])
local rate = per_minute / 60.0
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(b[1]) or per_minute
local updated = tonumber(b[2]) or now
tokens = math.min(per_minute, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return tostring(wait)
"""


@dataclass(frozen=True, slots=True)
class LiveCall:
    session_id: str
    host: str
    worker: int
    started: float  # Unix seconds
    agent_id: str = ""


class RedisState:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            health_check_interval=10,
        )
        self._take_rate = self._redis.register_script(_TAKE_RATE)

    async def _do(self, what: str, command: Awaitable[Any]) -> Any:
        try:
            return await command
        except (RedisError, OSError) as exc:
            raise SharedStateUnavailable(f"redis {what}: {type(exc).__name__}") from exc

    async def spend_nonce(self, nonce: bytes, expiry: int) -> bool:
        key = PREFIX + "nonce:" + nonce.hex()
        return bool(await self._do("spend", self._redis.set(key, 1, nx=True, exat=expiry)))

    async def take_rate(self, client: str, per_minute: int) -> float:
        if per_minute <= 0:
            return 0.0
        keys = [PREFIX + "rate:" + client]
        return float(await self._do("rate", self._take_rate(keys=keys, args=[per_minute])))

    # ---- the registry of live calls ---------------------------------------

    async def calls_started(self, calls: list[LiveCall]) -> None:
        """Add, or keep alive, the calls this worker owns."""
        if not calls:
            return
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            pipe.set(PREFIX + "call:" + call.session_id, json.dumps(asdict(call)), ex=SESSION_TTL_S)
        await self._do("register", pipe.execute())

    async def call_ended(self, session_id: str) -> None:
        await self._do("unregister", self._redis.delete(PREFIX + "call:" + session_id))

    async def live_calls(self) -> list[LiveCall]:
        try:
            keys = [k async for k in self._redis.scan_iter(match=PREFIX + "call:*", count=500)]
        except (RedisError, OSError) as exc:
            raise SharedStateUnavailable(f"redis list: {type(exc).__name__}") from exc
        if not keys:
            return []
        values = await self._do("list", self._redis.mget(keys))
        return [LiveCall(**json.loads(v)) for v in values if v is not None]

    async def close(self) -> None:
        await self._redis.aclose()
