"""Preemptive replies: the LLM starts on a pause's transcript before the turn ends.

At a pause the turn so far may already be transcribed (``interim.py``: a
batch engine's speculative transcript of the whole turn). If the person has
in fact finished, the words of that transcript are the turn's words, and the
model can start on them while the end-of-turn wait runs out: its first
tokens are then ready when the turn is committed, not an STT and an LLM
latency after it.

Nothing of a preemptive reply reaches the person or the history by itself:
its tokens wait in a bounded queue. When the turn ends, the session asks
``adopt(transcript)``: if the turn's transcript is the one the reply was
started on (and the history has not moved since), the turn gets a language
model (``AdoptedLLM``) whose first ``stream_reply`` with the same messages
and options replays those tokens and reads on from the same stream; the
turn then runs exactly as it would have, deadlines and fallback included,
and it is the turn that puts the reply into the history. If the person goes
on instead (a new pause, speech resumed, another transcript), the reply is
cancelled and its tokens are counted as wasted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from media_server.agents import Agent
from media_server.config import Settings
from media_server.deadlines import StageDeadlines, first_item, remaining_items
from media_server.metrics import Metrics
from media_server.providers.base import LanguageModel, SpeechToText
from media_server.reply import reply_request
from media_server.text import ConversationHistory
from media_server.tools.registry import Toolbox
from media_server.types import ChatMessage, ProviderError, ReplyOptions

log = logging.getLogger(__name__)

# Tokens a preemptive reply may hold before its stream waits for the turn:
# a reply is a few hundred tokens; the turn commits within TURN_MAX_WAIT_MS.
QUEUE_BOUND = 512


@dataclass(frozen=True, slots=True)
class _Failed:
    error: ProviderError


_END = object()


class PreemptiveReply:
    """One LLM stream started on a speculative transcript, held until adopted."""

    def __init__(
        self,
        llm: LanguageModel,
        messages: Sequence[ChatMessage],
        options: ReplyOptions,
        deadlines: StageDeadlines,
        *,
        pause: int,
        text: str,
        label: str = "preemptive",
    ) -> None:
        self.llm = llm
        self.messages = tuple(messages)
        self.options = options
        self.pause = pause
        self.text = text
        self.tokens = 0  # received from the model so far
        self._deadlines = deadlines
        self._queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_BOUND)
        self._task = asyncio.create_task(self._produce(), name=f"{label}-llm")

    async def _produce(self) -> None:
        try:
            first, stream = await first_item(
                "llm", self.llm, lambda e: e.stream_reply(self.messages, self.options),
                self._deadlines, lambda: True,
            )  # fmt: skip
            if stream is not None:
                self.tokens += 1
                await self._queue.put(first)
                async for delta in remaining_items("llm", stream, self._deadlines):
                    self.tokens += 1
                    await self._queue.put(delta)
        except ProviderError as err:
            await self._queue.put(_Failed(err))
            return
        await self._queue.put(_END)

    async def deltas(self) -> AsyncIterator[str]:
        """The reply's tokens from the first, as they come (once)."""
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            # Read to the end, failed, or closed early by the turn (a barge-in):
            # either way the model's stream is done with.
            self._task.cancel()

    def cancel(self) -> None:
        self._task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


class AdoptedLLM:
    """The turn's language model: its first request with the preemptive
    reply's messages and options is answered by that reply; any other
    request (a retry after a failure included) goes to the real engine."""

    def __init__(
        self,
        llm: LanguageModel,
        reply: PreemptiveReply,
        on_unused: Callable[[PreemptiveReply], None] = lambda reply: reply.cancel(),
    ) -> None:
        """``on_unused``: the turn asked for something else (cancel and count it)."""
        self.name = llm.name
        self._llm = llm
        self._reply: PreemptiveReply | None = reply
        self._on_unused = on_unused

    def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions, **more: object
    ) -> AsyncIterator[str]:
        """``more``: whatever else a turn may pass its model (tools, ...): a
        request with any is not the one the preemptive reply made."""
        reply, self._reply = self._reply, None
        same = tuple(messages) == getattr(reply, "messages", None) and not more
        if reply is not None and same and options == reply.options:
            return reply.deltas()
        if reply is not None:
            # The turn's request is built apart from start()'s: if they ever
            # differ (a new option, a prompt line), say so instead of paying twice quietly.
            log.warning("preemptive reply unused: the turn asked for a different request")
            self._on_unused(reply)
        return self._llm.stream_reply(messages, options, **more)

    def __getattr__(self, name: str) -> object:
        # Anything else a turn asks of its model is the engine's.
        return getattr(self._llm, name)

    async def warm_up(self) -> None:
        await self._llm.warm_up()

    async def close(self) -> None:
        """The engine is the process's, not this turn's: nothing to close."""


def pauses_start_replies(settings: Settings, stt: SpeechToText) -> bool:
    """Whether a pause's transcript may start a reply: on, and the engine's
    transcript of a pause covers the turn (a batch engine's speculative one,
    or a stream whose interims are final). A partial decode (pocketsphinx)
    starts none, so the listener need not report pauses for it."""
    caps = stt.capabilities
    return settings.preemptive_reply == "on" and (not caps.streaming or caps.final_interims)


class Preemption:
    """A session's preemptive reply: at most one, started at a pause."""

    def __init__(
        self,
        llm: LanguageModel,
        history: ConversationHistory,
        agent: Agent,
        deadlines: StageDeadlines,
        metrics: Metrics,
        *,
        label: str,
        enabled: bool = True,
        tools: Toolbox | None = None,
    ) -> None:
        """``tools``: what the agent's turns offer their model (the request must match)."""
        self._llm = llm
        self._tools = tools
        self._history = history
        self._agent = agent
        self._deadlines = deadlines
        self._metrics = metrics
        self._label = label
        self.enabled = enabled
        self.pending: PreemptiveReply | None = None
        # The last adopted reply: its turn reads it; cancelled once a later
        # pause or the session's end shows that turn is over.
        self._adopted: PreemptiveReply | None = None
        self._dropped: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        llm: LanguageModel,
        history: ConversationHistory,
        agent: Agent,
        metrics: Metrics,
        label: str,
        tools: Toolbox | None = None,
    ) -> Preemption:
        deadlines = StageDeadlines.from_settings(settings)
        enabled = settings.preemptive_reply == "on"
        return cls(
            llm, history, agent, deadlines, metrics, label=label, enabled=enabled, tools=tools
        )

    def start(self, pause: int, text: str, said: str) -> None:
        """The whole turn up to ``pause`` reads ``text``: start the reply that
        the turn would ask for, ``said`` being its words (``text`` after the
        words of a turn it continues)."""
        if not self.enabled:
            return
        self.discard("superseded")
        self._retire_adopted()
        prompt, options = reply_request(self._agent, self._tools)
        messages = self._history.messages_with_user(prompt, said)
        self.pending = PreemptiveReply(
            self._llm, messages, options, self._deadlines,
            pause=pause, text=text, label=self._label,
        )  # fmt: skip
        self._metrics.preemptive.labels(outcome="started").inc()

    def still_paused(self, pause: int | None) -> None:
        """The listener's current pause (None: none): a reply started at
        another one is for words the person has gone on from."""
        if self.pending is not None and self.pending.pause != pause:
            self.discard("resumed")

    def adopt(self, transcript: str | None) -> AdoptedLLM | None:
        """The turn ended with ``transcript`` (None: not transcribed yet): the
        model that answers it, if the pending reply is for those words."""
        reply, self.pending = self.pending, None
        if reply is None:
            return None
        if transcript is None or transcript.strip() != reply.text.strip():
            self.pending = reply
            self.discard("mismatch")
            return None
        self._metrics.preemptive.labels(outcome="adopted").inc()
        self._retire_adopted()
        self._adopted = reply
        return AdoptedLLM(self._llm, reply, on_unused=self._unused)

    def _unused(self, reply: PreemptiveReply) -> None:
        if self._adopted is reply:
            self._adopted = None
        self._drop(reply, "unused")

    def _retire_adopted(self) -> None:
        reply, self._adopted = self._adopted, None
        if reply is not None:
            reply.cancel()

    def discard(self, reason: str) -> None:
        """Cancel the pending reply; its tokens count as wasted."""
        reply, self.pending = self.pending, None
        if reply is not None:
            self._drop(reply, reason)

    def _drop(self, reply: PreemptiveReply, reason: str) -> None:
        reply.cancel()
        log.debug("%s: preemptive reply discarded (%s)", self._label, reason)
        self._metrics.preemptive.labels(outcome="discarded").inc()
        task = asyncio.ensure_future(self._count_waste(reply))
        self._dropped.add(task)
        task.add_done_callback(self._dropped.discard)

    async def _count_waste(self, reply: PreemptiveReply) -> None:
        await reply.wait_closed()
        self._metrics.preemptive_wasted_tokens.inc(reply.tokens)
        self._metrics.preemptive_wasted_per_turn.observe(reply.tokens)

    async def aclose(self) -> None:
        self.discard("session_end")
        self._retire_adopted()
        for task in list(self._dropped):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2.0)
