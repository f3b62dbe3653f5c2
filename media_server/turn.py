"""One conversational turn: utterance -> STT -> LLM (streamed) -> chunks -> TTS -> speaker.

The reply pipeline and nothing else: the deadlines are a ``StageDeadlines``
(deadlines.py), the retry and the words a person reads are ``faults.py``'s,
the session decides what a turn's end means for the conversation. A turn
reports each stage's outcome (``on_stage_result``) and its phase
(``on_phase``: processing -> generating_audio -> speaking); cancel its task
to cut it short, and ``record_heard()`` keeps what the person heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from media_server import faults, protocol
from media_server.agents import Agent
from media_server.audio.speaker_feed import SPEAKER_RATE
from media_server.deadlines import Fallback, StageDeadlines
from media_server.providers.base import Providers, SpeechToTextStream
from media_server.reply import ReplyWriter
from media_server.spoken import SpokenReply
from media_server.store.records import TurnRecord
from media_server.text import ConversationHistory
from media_server.tools.registry import Toolbox
from media_server.tools.rounds import CallRecord
from media_server.transcription import utterance_text
from media_server.transport import Speaker
from media_server.types import ProviderError, Stage, Utterance

log = logging.getLogger(__name__)

TTS_QUEUE_BOUND = 32  # sentence chunks waiting for synthesis
# How a turn's phase shows on the page while it runs.
Phase = protocol.Status


@dataclass
class TurnContext:
    """What a turn needs from its session; the session owns all of it."""

    agent: Agent
    providers: Providers
    speaker: Speaker
    history: ConversationHistory
    deadlines: StageDeadlines
    send: Callable[[str], None]
    on_phase: Callable[[], None] = lambda: None  # the turn's phase changed
    on_stage_result: Callable[[Stage, ProviderError | None], None] = lambda stage, err: None
    observe: Callable[[str, float], None] = lambda name, ms: None  # latency metrics sink
    # An engine failed and the next in its chain took the request (stage, from, to).
    on_fallback: Fallback | None = None
    tools: Toolbox | None = None  # what the agent can call (None: it only talks)
    on_turn_end: Callable[[TurnRecord], None] = lambda record: None  # the conversation record


@dataclass
class TurnResult:
    outcome: str  # "completed" | "dropped" | "error"
    transcript: str = ""
    reply: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    error: ProviderError | None = None


class Turn:
    """Runs one turn to completion; cancel its task to cut it short."""

    def __init__(
        self,
        ctx: TurnContext,
        turn_id: int,
        *,
        utterance: Utterance | None = None,
        text: str | None = None,
        started_at: float | None = None,
        stt_stream: SpeechToTextStream | None = None,
        transcript: str | None = None,
        prefix: str = "",
    ) -> None:
        if (utterance is None) == (text is None):
            raise ValueError("a turn starts from an utterance or from text, not both")
        self.ctx = ctx
        self.turn_id = turn_id
        self.utterance = utterance
        self.text = text
        # The same utterance, already decoded while it was spoken (if the
        # STT engine streams); finishing it is all that is left.
        self.stt_stream = stt_stream
        # The same utterance, already transcribed speculatively at its last
        # pause (nothing was said after it): no transcription is left to do.
        self.transcript = transcript
        # The words of a turn this one continues (the person went on before
        # the agent said anything): they open this turn's transcript.
        self.prefix = prefix
        self.user_text: str | None = None  # what this turn put in the history
        # run() has begun: a task cancelled before its first step never runs it.
        self.begun = False
        # t0: the moment the person stopped speaking (or pressed send).
        if utterance is not None:
            self.t0 = utterance.speech_ended_at or time.monotonic()
        else:
            self.t0 = started_at if started_at is not None else time.monotonic()
        self.phase: Phase = "processing"
        self.metrics: dict[str, float | None] = {}
        self._spoken = SpokenReply(ctx.speaker, on_first_audio=self._on_first_audio_out)
        self._heard_recorded = False
        self._heard = ""
        self._retracted = False  # goes on in the next turn: not a turn of its own
        self._writer = ReplyWriter(ctx, turn_id, mark=self._mark)

    def _set_phase(self, phase: Phase) -> None:
        if phase != self.phase:
            self.phase = phase
            self.ctx.on_phase()

    def _mark(self, name: str) -> float:
        ms = (time.monotonic() - self.t0) * 1000
        self.metrics.setdefault(name, ms)
        return ms

    # ---- stages --------------------------------------------------------

    async def _reply(self, tts_queue: asyncio.Queue[str | None]) -> None:
        await self._writer.write(tts_queue)

    async def _speak(self, tts_queue: asyncio.Queue[str | None]) -> None:
        """Speaks the reply's pieces in order as the LLM writes them."""
        ctx = self.ctx
        while (piece := await tts_queue.get()) is not None:
            if not self._spoken.started:
                self._set_phase("generating_audio")
            await self._spoken.say(
                piece,
                ctx.providers.tts,
                ctx.agent.voice_for,
                ctx.deadlines,
                on_first_byte=lambda: self._mark("first_tts_byte_ms"),
                on_fallback=ctx.on_fallback,
            )
            tts_queue.task_done()  # a tool that must follow the words waits on join()

    def _on_first_audio_out(self, at: float) -> None:
        self.metrics.setdefault("first_audio_ms", (at - self.t0) * 1000)
        self._set_phase("speaking")

    @property
    def tool_records(self) -> list[CallRecord]:
        """The tool calls this turn ran (for the conversation record)."""
        return self._writer.tool_records

    @property
    def reply_started(self) -> bool:
        return bool(self._writer.text)

    def record_heard(self) -> str:
        """Put what the person heard of the reply into the history, once.

        Synchronous so the session can call it the moment it cuts a turn
        short, before the next turn reads the history.
        """
        if self._heard_recorded:
            return self._heard
        self._heard_recorded = True
        self._heard = self._spoken.heard()
        self.ctx.history.add_tool_rounds(self._writer.tool_messages)
        self.ctx.history.add_assistant(self._heard)
        return self._heard

    @property
    def continuable(self) -> bool:
        """A spoken turn the person has heard nothing of yet, and that has not
        acted (called a tool): if they go on talking, it is the same turn."""
        return self.utterance is not None and not self._spoken.started and not self._writer.acted

    def retract(self) -> None:
        """Take back what the turn put in the history; record_heard() then
        adds nothing (the turn goes on in the next one)."""
        self._heard_recorded = self._retracted = True
        if self.user_text is not None:
            self.ctx.history.retract_user(self.user_text)

    def discard(self) -> None:
        """Give back what a turn that never ran holds: its streaming transcript."""
        if self.stt_stream is not None:
            self.stt_stream.cancel()
            self.stt_stream = None

    # ---- the turn ------------------------------------------------------

    async def run(self) -> TurnResult:
        self.begun = True
        ctx = self.ctx
        transcript = ""
        try:
            if self.utterance is not None:
                u = self.utterance
                if u.turn_ended_at and u.speech_ended_at:
                    self.metrics["end_of_turn_wait_ms"] = (
                        u.turn_ended_at - u.speech_ended_at
                    ) * 1000
                stream, self.stt_stream = self.stt_stream, None
                transcript = await utterance_text(
                    u,
                    stream=stream,
                    transcript=self.transcript,
                    stt=ctx.providers.stt,
                    deadlines=ctx.deadlines,
                    on_result=ctx.on_stage_result,
                    on_fallback=ctx.on_fallback,
                )
                transcript = f"{self.prefix} {transcript}".strip()
                if not transcript:
                    return TurnResult("dropped", metrics=self.metrics)
                self._mark("transcript_ms")
            else:
                transcript = self.text or ""
                self.metrics["transcript_ms"] = 0.0
            ctx.send(protocol.transcription(transcript, self.turn_id, is_final=True))
            ctx.history.add_user(transcript)
            self.user_text = transcript
            await self._reply_and_speak()
            await wait_played(ctx.speaker)
            self._heard_recorded = True
            ctx.history.add_tool_rounds(self._writer.tool_messages)
            ctx.history.add_assistant(self._writer.text)
            self._mark("total_ms")
            self.send_metrics()
            self._report_end("completed", self._writer.text)
            return TurnResult("completed", transcript, self._writer.text, self.metrics)
        except ProviderError as err:
            log.warning("turn %s failed: %s (%s)", self.turn_id, err.stage, err.kind)
            # The person may have heard part of the reply: keep that, nothing more.
            heard = self.record_heard()
            ctx.speaker.clear()
            ctx.send(faults.turn_failed_event(err))
            self.send_metrics()
            self._report_end("error", heard)
            return TurnResult("error", transcript, self._writer.text, self.metrics, err)
        except asyncio.CancelledError:
            heard = self.record_heard()
            if not self._retracted:
                self._report_end("interrupted", heard)
            raise

    def _report_end(self, outcome: str, reply: str) -> None:
        """Hand the turn to the conversation record (a turn with words only)."""
        if self.user_text is not None:
            tools = [c.as_json() for c in self._writer.tool_records]
            self.ctx.on_turn_end(
                TurnRecord(self.turn_id, outcome, self.user_text, reply, tools, self.metrics)
            )

    async def _reply_and_speak(self) -> None:
        """LLM and TTS run side by side, joined by a bounded queue of chunks;
        whichever fails first stops the other."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(TTS_QUEUE_BOUND)
        report = self.ctx.on_stage_result

        async def reply() -> None:
            try:
                await self._reply(queue)
            except ProviderError as err:
                report("llm", err)
                raise
            report("llm", None)
            await queue.put(None)

        async def speak() -> None:
            try:
                await self._speak(queue)
            except ProviderError as err:
                report("tts", err)
                raise
            report("tts", None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(reply(), name=f"turn-{self.turn_id}-llm")
                group.create_task(speak(), name=f"turn-{self.turn_id}-tts")
        except BaseExceptionGroup as failures:
            provider_errors = [e for e in failures.exceptions if isinstance(e, ProviderError)]
            if len(provider_errors) == len(failures.exceptions):
                raise provider_errors[0] from None
            raise

    def send_metrics(self, *, interrupted: bool = False) -> None:
        """Report the stages this turn reached (also when it was cut short:
        how fast the agent started talking is as true of an interrupted turn)."""
        for name, value in self.metrics.items():
            if value is not None:
                self.ctx.observe(name, value)
        self.ctx.send(protocol.turn_metrics(self.turn_id, interrupted=interrupted, **self.metrics))


async def wait_played(speaker: Speaker) -> None:
    """Until the speaker has played everything queued (bounded by its length)."""
    speaker.end_of_reply()
    target = speaker.played_samples + speaker.queued_samples
    remaining_s = speaker.queued_samples / SPEAKER_RATE
    await speaker.wait_until_played(target, timeout=remaining_s + 2.0)
