"""What every HTTP provider shares: how long idle connections live, and the
imports to do at start instead of during the first turn.

httpx closes a connection after 5 idle seconds, and people pause longer than
that between turns: every turn then paid a new TCP connection (and, against a
real API, a TLS handshake of 50-150 ms) before its first byte. Idle
connections are kept for ``KEEPALIVE_S`` instead. One the server has closed
meanwhile is noticed by the pool before reuse; the rare one closed
mid-request is an ordinary connection error, which turn.py retries once.
"""

from __future__ import annotations

import importlib

KEEPALIVE_S = 120.0


def warm_up_imports(*modules: str) -> None:
    """Import now what would otherwise be imported on first use.

    Each costs the event loop 100-250 ms of CPU the first time: a glitch in
    every live session's audio and a slow first turn. anyio's asyncio
    backend is what httpx's connection pool loads on its first request.
    """
    for name in ("anyio._backends._asyncio", *modules):
        importlib.import_module(name)
