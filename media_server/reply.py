"""A turn's reply in words: streamed from the model, with the tools it calls.

The model's words go to the page (``llm_response``) and, in sentence-sized
pieces, to the speech queue as they arrive. When the model asks for tools,
they run (tools/rounds.py) and the model is asked again with their answers,
up to ``MAX_ROUNDS`` times a turn; a round whose tools take long gets a
spoken filler first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from media_server import protocol
from media_server.audio.speaker_feed import SPEAKER_RATE
from media_server.deadlines import first_item, remaining_items
from media_server.providers.base import LanguageModel
from media_server.text import SentenceChunker
from media_server.tools.rounds import FILLER, GAVE_UP, MAX_ROUNDS, CallRecord, run_round
from media_server.types import ChatMessage, ProviderError, ReplyOptions, ToolCall

if TYPE_CHECKING:
    from media_server.agents import Agent
    from media_server.tools.registry import Toolbox
    from media_server.turn import TurnContext

PARTIAL_UPDATE_S = 0.05  # the page's growing reply: ~20 updates a second at most


def reply_request(agent: Agent, tools: Toolbox | None) -> tuple[str, ReplyOptions]:
    """The system prompt and options of a turn's request to its model. The
    turn and a preemptive reply (preemptive.py) both build it here: the
    preemptive reply is adopted only when it made the very same request."""
    specs = tools.specs() if tools is not None else ()
    options = ReplyOptions(
        temperature=agent.temperature,
        max_tokens=agent.max_tokens,
        persona=agent.persona,
        tools=specs,
    )
    prompt = agent.prompt
    if specs:
        # A model that books needs to know what "Tuesday" means today.
        prompt += f"\n\nToday is {dt.date.today():%A %Y-%m-%d}."
    return prompt, options


class ReplyWriter:
    """Writes one turn's reply; ``text`` is all of it so far."""

    def __init__(self, ctx: TurnContext, turn_id: int, *, mark: Callable[[str], float]) -> None:
        self.ctx = ctx
        self.turn_id = turn_id
        self._mark = mark
        self.text = ""
        self._last_update = float("-inf")
        # This turn's finished tool rounds (assistant calls, tool answers), in
        # the history before its reply once the turn ends; and what ran.
        self.tool_messages: list[ChatMessage] = []
        self.tool_records: list[CallRecord] = []
        self.acted = False  # a tool round has started

    async def write(self, tts_queue: asyncio.Queue[str | None]) -> None:
        """Streams the reply text (llm_response events, TTS chunks), running
        the tools the model calls in between, up to MAX_ROUNDS rounds."""
        ctx = self.ctx
        prompt, options = reply_request(ctx.agent, ctx.tools)
        chunker = SentenceChunker()
        for _ in range(MAX_ROUNDS):
            messages = [*ctx.history.messages(prompt), *self.tool_messages]
            text_before = len(self.text)
            calls = await self._stream_round(messages, options, chunker, tts_queue)
            if not calls or ctx.tools is None:
                break
            said = self.text[text_before:].strip()
            self.acted = True  # the page saw it act: no longer a turn to cut without a word
            if ctx.tools.wants_heard(calls):
                await self._until_heard(chunker, tts_queue)
            answers = await run_round(
                ctx.tools,
                calls,
                send=ctx.send,
                on_slow=lambda: self._add_text(FILLER + " ", chunker, tts_queue),
                records=self.tool_records,
            )
            self.tool_messages += [ChatMessage("assistant", said, tool_calls=tuple(calls))]
            self.tool_messages += answers
        else:
            await self._add_text(GAVE_UP, chunker, tts_queue)
        for piece in chunker.flush():
            await tts_queue.put(piece)
        if not self.text.strip():
            raise ProviderError("llm", "bad_output", "llm: empty reply")
        self._mark("llm_done_ms")
        ctx.send(protocol.llm_response(self.text, self.turn_id, is_final=True))

    async def _until_heard(
        self, chunker: SentenceChunker, tts_queue: asyncio.Queue[str | None]
    ) -> None:
        """Until every word of the reply so far was spoken and played (on a
        phone: its marks came back), bounded by the audio's own length."""
        for piece in chunker.flush():
            await tts_queue.put(piece)
        await tts_queue.join()  # the speaking task marks each piece done once it is queued
        speaker = self.ctx.speaker
        speaker.end_of_reply()
        target = speaker.played_samples + speaker.queued_samples
        await speaker.wait_until_played(target, timeout=speaker.queued_samples / SPEAKER_RATE + 2.0)

    async def _stream_round(
        self,
        messages: list[ChatMessage],
        options: ReplyOptions,
        chunker: SentenceChunker,
        tts_queue: asyncio.Queue[str | None],
    ) -> list[ToolCall]:
        """One request to the model: its words go out as they come; the
        tool calls it made come back."""
        ctx = self.ctx

        def open_stream(engine: LanguageModel) -> AsyncIterator[str | ToolCall]:
            return engine.stream_reply(messages, options)

        first, stream = await first_item(
            "llm", ctx.providers.llm, open_stream, ctx.deadlines, lambda: True, ctx.on_fallback
        )
        if stream is None:
            raise ProviderError("llm", "bad_output", "llm: empty reply")
        self._mark("first_token_ms")

        async def items() -> AsyncIterator[str | ToolCall]:
            yield first
            async for item in remaining_items("llm", stream, ctx.deadlines):
                yield item

        calls: list[ToolCall] = []
        async for item in items():
            if isinstance(item, ToolCall):
                calls.append(item)
            elif item:
                await self._add_text(item, chunker, tts_queue)
        return calls

    async def _add_text(
        self, delta: str, chunker: SentenceChunker, tts_queue: asyncio.Queue[str | None]
    ) -> None:
        self.text += delta
        pieces = chunker.feed(delta)
        # Each update carries the whole reply so far: one per token would
        # cost O(n^2) bytes on a long reply. Update on every spoken piece
        # and otherwise at most every PARTIAL_UPDATE_S.
        now = time.monotonic()
        if pieces or now - self._last_update >= PARTIAL_UPDATE_S:
            self._last_update = now
            self.ctx.send(protocol.llm_response(self.text, self.turn_id, is_final=False))
        for piece in pieces:
            await tts_queue.put(piece)
