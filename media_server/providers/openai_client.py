"""The one way our OpenAI providers make their SDK client.

Retries are turn.py's decision (at most one), so the SDK makes none. A local
OpenAI-compatible server may need no key, but the SDK refuses to start
without one (and would read OPENAI_API_KEY behind our back). Idle
connections stay open between turns (see ``pooling``).
"""

from __future__ import annotations

import httpx2  # the SDK's HTTP library (an httpx fork): its client takes its Limits
import openai

from .pooling import KEEPALIVE_S

LIMITS = httpx2.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_S
)


def make_client(*, api_key: str, base_url: str | None, timeout_s: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=api_key or "no-key",
        base_url=base_url,
        timeout=timeout_s,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(timeout=timeout_s, limits=LIMITS),
    )
