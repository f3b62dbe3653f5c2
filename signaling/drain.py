"""Graceful drain: a deploy or an autoscaler step must not hang up on people.

On the first SIGTERM the server stops taking calls (offers get 503 with
``Retry-After``; ``/health`` answers 503 ``draining`` so a load balancer
moves on), tells every live call once, and lets them go on for up to
``DRAIN_TIMEOUT_S``; it returns as soon as none is left. What is still live
at the deadline (or on a second signal) is then ended by the app's shutdown,
with ``session_end: shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from media_server import protocol
from signaling.state import REGISTRY_KEY

log = logging.getLogger(__name__)

POLL_S = 0.2  # how soon the server exits after its last call ends


def draining_message(timeout_s: float) -> str:
    """What a person in a live call reads when the server starts to drain."""
    minutes = max(1, round(timeout_s / 60))
    span = (
        f"{minutes} minute{'s' if minutes != 1 else ''}"
        if timeout_s >= 60
        else (f"{timeout_s:g} seconds")
    )
    return (
        f"This server is restarting. Your call can go on for up to {span}; "
        "a new call will start on another server."
    )


async def drain(app: web.Application, timeout_s: float, abort: asyncio.Event) -> bool:
    """Stop taking calls, tell the live ones, wait for them to end (at most
    ``timeout_s``, or until ``abort``). True if none was left."""
    registry = app[REGISTRY_KEY]
    registry.closing = True
    live = registry.local_sessions()
    log.warning("draining: %d call(s) live, up to %gs", len(live), timeout_s)
    message = protocol.notice("draining", draining_message(timeout_s))
    for session in live:
        session.events.send(message)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while registry.local_sessions() and asyncio.get_running_loop().time() < deadline:
        # Woken at once by a second signal; else a look at the calls every POLL_S.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(abort.wait(), POLL_S)
        if abort.is_set():
            break
    left = len(registry.local_sessions())
    if left:
        log.warning("drain over: ending %d call(s)", left)
    return left == 0
