"""What the embedded engines (Whisper, pocketsphinx, Piper) share: their
work runs on the engine's own thread pool, off the event loop, and any
failure there is the usual provider error, so fallback chains treat an
embedded engine like a cloud one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from media_server.types import ProviderError, Stage

log = logging.getLogger(__name__)

T = TypeVar("T")


async def run_in_engine_pool(
    executor: Executor | None,
    fn: Callable[..., T],
    *args: Any,
    stage: Stage,
    name: str,
    closed: bool = False,
) -> T:
    """``fn(*args)`` on ``executor``; ``unavailable`` once the engine is
    closed (or has no executor), ``bad_output`` for anything it raises (the
    native engines raise RuntimeError/ValueError on bad model files or bad
    state: the turn only needs to know there is no output)."""
    if closed or executor is None:
        raise ProviderError(stage, "unavailable", f"{name}: provider is closed")
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(executor, fn, *args)
    except ProviderError:
        raise
    except Exception as exc:
        log.warning("%s failed: %r", name, exc)
        raise ProviderError(stage, "bad_output", f"{name}: {exc!r}") from exc
