"""Streamed replies from OpenAI chat completions (or any compatible server).

OpenAI-compatible servers (Ollama, vLLM, llama.cpp) differ in small ways the
stream must tolerate: chunks with no choices (Azure's prompt-filter chunk, the
usage chunk), no usage at all, and deltas whose content is null.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from . import errors
from .base import ChatMessage, ReplyOptions

log = logging.getLogger(__name__)


class OpenAILLM:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = "gpt-4o-mini",
        timeout_s: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self._model = model
        # Retries are turn.py's decision (at most one), so the SDK makes none. A
        # local OpenAI-compatible server may need no key, but the SDK refuses to
        # start without one (and would read OPENAI_API_KEY behind our back).
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "no-key", base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self._closed = False

    async def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str]:
        """Yield text deltas as they arrive; ``ProviderError`` on failure.

        Closing or cancelling the generator closes the HTTP response at once.
        """
        secrets = (self._api_key,)
        try:
            stream: Any = await self._client.chat.completions.create(
                model=self._model,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                stream=True,
            )
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("llm", exc, secrets=secrets) from None

        produced = False
        finish_reason: str | None = None
        try:
            async with stream:
                async for chunk in stream:
                    for choice in getattr(chunk, "choices", None) or ():
                        if getattr(choice, "index", 0) not in (0, None):
                            continue  # n > 1 is never asked for; ignore extras
                        finish_reason = getattr(choice, "finish_reason", None) or finish_reason
                        delta = getattr(choice, "delta", None)
                        content = getattr(delta, "content", None)
                        if isinstance(content, str) and content:
                            produced = True
                            yield content
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("llm", exc, secrets=secrets) from None
        if not produced:
            # Nothing to say (content filter, zero max_tokens, a broken server):
            # the turn must not go on to speak silence.
            raise errors.bad_output("llm", f"empty reply (finish_reason={finish_reason})")

    async def warm_up(self) -> None:
        """The SDK imports its resources and types on first use (~100-200 ms
        of CPU on the loop, a glitch for every live session): do it at start."""
        self._client.chat.completions  # noqa: B018 - the attribute access is the lazy import
        importlib.import_module("openai.types.chat")
        importlib.import_module("openai.lib.streaming.chat")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()
