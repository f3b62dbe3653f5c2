"""This worker's calls in the shared registry of live calls (Redis only).

One owner writes them: a loop that lists the calls this worker owns (with a
TTL of a few refreshes) when one starts or ends and every ``REFRESH_S``,
and removes those that ended since. A worker or host that dies stops
refreshing, and its calls leave the registry by themselves within
``SESSION_TTL_S``; nothing else ever has to clean up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

from media_server.session import VoiceSession
from signaling.shared import SharedStateUnavailable
from signaling.shared.redis_state import LiveCall, RedisState

log = logging.getLogger(__name__)

REFRESH_S = 5.0
TICK_S = 0.5  # how often this worker's own calls are looked at (no I/O)


async def keep_calls_listed(
    state: RedisState, local_sessions: Callable[[], list[VoiceSession]], port: int
) -> None:
    """Runs until cancelled."""
    host = f"{socket.gethostname()}:{port}"
    started: dict[str, float] = {}
    listed: set[str] = set()
    written_at = float("-inf")
    try:
        while True:
            sessions = local_sessions()
            ids = {s.session_id for s in sessions}
            now = time.time()
            # Written when a call starts or ends (seen within TICK_S), and
            # refreshed every REFRESH_S so the entries outlive no worker long.
            if ids != listed or now - written_at >= REFRESH_S:
                calls = [
                    LiveCall(
                        s.session_id,
                        host,
                        os.getpid(),
                        started.setdefault(s.session_id, now),
                        s.agent.id,
                    )
                    for s in sessions
                ]
                try:
                    await state.calls_started(calls)
                    for gone in listed - ids:
                        await state.call_ended(gone)
                        started.pop(gone, None)
                    listed, written_at = ids, now
                except SharedStateUnavailable as exc:
                    log.warning("live-call registry not updated: %s", exc)
                    written_at = now  # try again at the next refresh, not every tick
            await asyncio.sleep(TICK_S)
    finally:
        # Shutting down: this worker's calls are over (best effort, bounded).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                for gone in listed:
                    await state.call_ended(gone)
