"""The offline agent: honest, rule-based replies per persona. Not a language model.

With no API key the server still holds a useful conversation: a clinic
receptionist that books, moves and cancels appointments, a software sales
agent that explains plans and books demos, and a tech-support agent that walks
through fixes step by step. Replies are built from keywords, so they are
deterministic and testable.

The engine keeps no per-session state: every call replays the conversation it
is given (a few dozen turns at most, microseconds each), so one instance
serves all sessions and an interrupted or edited history is simply re-read.

Offline speech recognition is rough ("book an appointment" may arrive as
"look a pointment"), so matching works on lowercased word stems with a few
synonyms, and details (weekday, time, name, phone digits) are pulled out of
whatever words did arrive.

The rules live in the ``media_server.providers.scripted`` package, one module per
purpose; this module is the public face: ``ScriptedLLM`` and the helpers tests use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from media_server.providers.scripted.common import CAPABILITIES, INTROS, Handler
from media_server.providers.scripted.compose import HANDLERS, compose_reply
from media_server.providers.scripted.details import (
    find_count,
    find_day,
    find_name,
    find_phone,
    find_time,
    speak_digits,
)
from media_server.providers.scripted.reading import read_turn
from media_server.providers.scripted.tool_plan import plan
from media_server.types import ChatMessage, ProviderError, ReplyOptions, ToolCall

__all__ = [
    "CAPABILITIES",
    "HANDLERS",
    "INTROS",
    "Handler",
    "ScriptedLLM",
    "compose_reply",
    "find_count",
    "find_day",
    "find_name",
    "find_phone",
    "find_time",
    "read_turn",
    "speak_digits",
]

log = logging.getLogger(__name__)


class ScriptedLLM:
    """LanguageModel that streams scripted, persona-aware replies word by word."""

    name = "scripted"

    def __init__(self, *, today: Callable[[], dt.date] = dt.date.today) -> None:
        self._today = today

    async def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str | ToolCall]:
        try:
            offered = frozenset(t["function"]["name"] for t in options.tools)
            planned = plan(messages, options.persona, offered, self._today())
        except Exception as exc:  # a bug in a rule must end this turn, not the session
            log.exception("scripted reply failed")
            raise ProviderError("llm", "bad_output", f"scripted: {exc!r}") from exc
        if isinstance(planned, ToolCall):
            await asyncio.sleep(0)
            yield planned
            return
        words = planned.split()
        # ~0.75 words per token, the usual rule of thumb for English.
        words = words[: max(1, options.max_tokens * 3 // 4)]
        for i, word in enumerate(words):
            # Yield to the loop between words so the reply streams like a model's.
            await asyncio.sleep(0)
            yield word if i == 0 else " " + word

    async def warm_up(self) -> None:
        """Nothing to load: the rules are plain Python, imported with this module."""
        return None

    async def close(self) -> None:
        return None
