"""Admission checks for ``POST /api/offer``: per-IP rate limit and Origin.

Both are pure and synchronous (a clock is injected) so they are tested
without a server; ``signaling.app`` applies them before reading the body.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from media_server.config_values import normalize_origin

# Distinct client addresses tracked at once. Past this the least recently
# seen bucket is dropped: at worst that address gets a fresh allowance, and
# memory stays bounded whatever the traffic.
MAX_TRACKED_CLIENTS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client: ``per_minute`` offers, bursts up to that many.

    ``per_minute == 0`` disables it.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, client: str) -> float:
        """0.0 if ``client`` may go ahead (one token spent), else the seconds
        until it may (nothing spent)."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(float(self.per_minute), now)
            self._buckets[client] = bucket
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.per_minute), bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate


def retry_after_header(seconds: float) -> str:
    """RFC 9110 §10.2.3 delay-seconds: a whole number, at least 1."""
    return str(max(1, math.ceil(seconds)))


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request with this ``Origin`` may post an offer.

    No ``Origin`` (curl, a script, a native app) is allowed: browsers always
    send one on a cross-origin POST, and tokens are what protect the rest.
    With ``allowed`` empty only the same origin passes: the Origin's host and
    port equal the ``Host`` header's (the port defaulting to the Origin's
    scheme). ``*`` allows any origin. ``Origin: null`` (sandboxed frames,
    file://) is never the same origin.
    """
    if origin is None:
        return True
    if allowed == ("*",):
        return True
    normalized = normalize_origin(origin)
    if normalized is None:
        return False
    if allowed:
        return normalized in allowed
    if not host:
        return False
    scheme = normalized.split("://", 1)[0]
    return normalize_origin(f"{scheme}://{host}") == normalized
