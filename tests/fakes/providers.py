"""Building real providers against a fake in tests, and closing them after."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

P = TypeVar("P")


@contextlib.asynccontextmanager
async def provider_factory(
    cls: Callable[..., P], **defaults: Any
) -> AsyncIterator[Callable[..., P]]:
    """``make(**overrides)`` builds ``cls(**defaults, **overrides)``; every
    provider made is closed when the block ends."""
    made: list[Any] = []

    def make(**kwargs: Any) -> P:
        provider = cls(**{**defaults, **kwargs})
        made.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in made:
            await provider.close()
