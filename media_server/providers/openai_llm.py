"""Streamed replies from OpenAI chat completions (or any compatible server).

OpenAI-compatible servers (Ollama, vLLM, llama.cpp) differ in small ways the
stream must tolerate: chunks with no choices (Azure's prompt-filter chunk, the
usage chunk), no usage at all, and deltas whose content is null.

Tool calls stream as ``delta.tool_calls`` pieces: the first piece of each
call (by ``index``) has its id and name, the following ones append to its
``arguments`` text. They are put together here and yielded, whole, after the
text, as ``ToolCall`` values; the turn runs them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from media_server.types import ChatMessage, ReplyOptions, ToolCall

from . import errors
from .openai_client import make_client
from .pooling import warm_up_imports

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
        self._client = make_client(api_key=api_key, base_url=base_url, timeout_s=timeout_s)
        self._closed = False
        self._tools_refused = False  # the server said this model takes no tools

    async def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str | ToolCall]:
        """Yield text deltas as they arrive, then the tool calls the model
        made (if any); ``ProviderError`` on failure.

        Closing or cancelling the generator closes the HTTP response at once.
        """
        secrets = (self._api_key,)
        # A plain dict through the SDK's post(), not chat.completions.create():
        # create() rewrites the whole request recursively against its types
        # (1.5 ms at 3 messages, 5.5 ms at 21, all on the event loop) and builds
        # a pydantic model per streamed token (~0.2 ms each); cast_to=object
        # hands back each chunk's JSON as it came. Errors, auth and SSE framing
        # are still the SDK's.
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [m.wire() for m in messages],
            "temperature": options.temperature,
            "max_tokens": options.max_tokens,
            "stream": True,
        }
        if options.tools and not self._tools_refused:
            body["tools"] = list(options.tools)
        try:
            stream: Any = await self._open(body)
        except openai.BadRequestError as exc:
            if "tools" not in body or "tool" not in str(exc).lower():
                raise errors.from_exception("llm", exc, secrets=secrets) from None
            # A model that cannot call tools (many local ones): it still talks.
            log.warning("the model refused tools; replies go on without them")
            self._tools_refused = True
            del body["tools"]
            body["messages"] = [m.wire() for m in _words_only(messages)]
            try:
                stream = await self._open(body)
            except errors.KNOWN_ERRORS as again:
                raise errors.from_exception("llm", again, secrets=secrets) from None
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("llm", exc, secrets=secrets) from None

        produced = False
        finish_reason: str | None = None
        calls = _CallPieces()
        try:
            async with stream:
                async for chunk in stream:
                    for choice in _choices(chunk):
                        finish_reason = choice.get("finish_reason") or finish_reason
                        delta = choice.get("delta")
                        if not isinstance(delta, dict):
                            continue
                        calls.add(delta.get("tool_calls"))
                        content = delta.get("content")
                        if isinstance(content, str) and content:
                            produced = True
                            yield content
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("llm", exc, secrets=secrets) from None
        for call in calls.whole():
            produced = True
            yield call
        if not produced:
            # Nothing to say (content filter, zero max_tokens, a broken server):
            # the turn must not go on to speak silence.
            raise errors.bad_output("llm", f"empty reply (finish_reason={finish_reason})")

    async def _open(self, body: dict[str, Any]) -> Any:
        return await self._client.post(
            "/chat/completions",
            body=body,
            cast_to=object,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )

    async def warm_up(self) -> None:
        """Load at start what the SDK would load in the first turn."""
        warm_up_imports("openai._streaming")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()


def _words_only(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The conversation without tool rounds, for a model that takes no tools."""
    return [m for m in messages if m.role != "tool" and not m.tool_calls]


def _choices(chunk: Any) -> list[dict[str, Any]]:
    """The chunk's choice 0, if it has one: chunks with no choices (Azure's
    prompt-filter chunk, the usage chunk) and n > 1 extras are skipped."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    return [c for c in choices or () if isinstance(c, dict) and c.get("index", 0) in (0, None)]


class _CallPieces:
    """Tool calls put together from their streamed pieces, by index."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, pieces: Any) -> None:
        for piece in pieces if isinstance(pieces, list) else ():
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", 0)
            call = self._calls.setdefault(
                index if isinstance(index, int) else 0, {"id": "", "name": "", "arguments": ""}
            )
            if isinstance(piece.get("id"), str):
                call["id"] = piece["id"]
            function = piece.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    call["arguments"] += function["arguments"]

    def whole(self) -> list[ToolCall]:
        return [
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(self._calls.items())
            if c["name"]
        ]
