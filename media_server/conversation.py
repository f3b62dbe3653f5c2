"""The agent's side of a conversation: one turn at a time, cut short on demand.

A new turn interrupts the running one; an interrupted turn keeps in the
history only what the person heard of its reply, and says so to the page
(the final ``llm_response`` marked interrupted, and its ``turn_metrics``).

A spoken turn the person talks on from before the agent has said anything
is not interrupted but continued (``continue_turn``): it is cut without a
word, and the next spoken turn carries it on, with the same turn id and
its words first, so the model gets one message ("My flight got cancelled
… and I need a hotel"), not two.

Cancelled turns are awaited by ``aclose()``, so none outlives the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from media_server import faults, protocol
from media_server.metrics import Metrics
from media_server.providers.base import LanguageModel, SpeechToTextStream
from media_server.turn import Phase, Turn, TurnContext
from media_server.types import Utterance

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Carried:
    """A spoken turn cut to be continued by the next one."""

    turn_id: int
    utterance: Utterance
    text: str | None  # its words, if it had them by then


class Conversation:
    def __init__(
        self,
        ctx: TurnContext,
        metrics: Metrics,
        *,
        label: str,
        on_turn_done: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_turn_done``: a turn's task has finished, however it ended."""
        self._ctx = ctx
        self._metrics = metrics
        self._label = label
        self._on_turn_done = on_turn_done
        self._turn: Turn | None = None
        self._task: asyncio.Task[None] | None = None
        self._turn_seq = 0
        self._cancelled: set[asyncio.Task[None]] = set()
        self._carried: _Carried | None = None
        self._closed = False

    @property
    def busy(self) -> bool:
        """A turn is running: the agent holds the floor."""
        return self._task is not None

    @property
    def next_turn_id(self) -> int:
        """The id the next turn will have (interim transcripts carry it)."""
        return self._carried.turn_id if self._carried is not None else self._turn_seq + 1

    @property
    def carried_text(self) -> str:
        """The words of a turn waiting to be continued ("" if none)."""
        return (self._carried.text or "") if self._carried is not None else ""

    @property
    def phase(self) -> Phase | None:
        return self._turn.phase if self._turn is not None else None

    def start(
        self,
        *,
        utterance: Utterance | None = None,
        text: str | None = None,
        stt_stream: SpeechToTextStream | None = None,
        transcript: str | None = None,
        llm: LanguageModel | None = None,
    ) -> None:
        """Answer this utterance or text, cutting short the turn before it.
        ``transcript``: the utterance's words, if already transcribed;
        ``llm``: the model for this turn (a preemptive reply's), if not the usual."""
        if self._closed:
            if stt_stream is not None:
                stt_stream.cancel()
            return
        self.interrupt("new_turn")
        prefix = ""
        carried, self._carried = self._carried, None
        if carried is not None and carried.text is not None:
            turn_id, prefix = carried.turn_id, carried.text
        elif carried is not None and utterance is not None:
            # Its words were not in yet: transcribe both parts as one.
            turn_id = carried.turn_id
            utterance = _joined(carried.utterance, utterance)
            if stt_stream is not None:
                stt_stream.cancel()
            stt_stream = transcript = None
        else:
            self._turn_seq += 1
            turn_id = self._turn_seq
        ctx = self._ctx
        if llm is not None:
            ctx = replace(ctx, providers=replace(ctx.providers, llm=llm))
        turn = Turn(
            ctx,
            turn_id,
            utterance=utterance,
            text=text,
            stt_stream=stt_stream,
            transcript=transcript,
            prefix=prefix,
        )
        self._start_turn(turn)

    def continue_turn(self) -> bool:
        """The person talks on after a spoken turn ended, and the agent has
        said nothing of its reply yet: cut the turn without a word; the next
        spoken turn carries it on. False (nothing done) for any other turn."""
        turn, task = self._turn, self._task
        if task is None or turn is None or not turn.continuable:
            return False
        assert turn.utterance is not None
        turn.retract()
        self._carried = _Carried(turn.turn_id, turn.utterance, turn.user_text)
        self._cut(turn, task)
        self._metrics.turns.labels(outcome="continued").inc()
        log.info("%s: turn %s continues", self._label, turn.turn_id)
        return True

    def resume_carried(self) -> None:
        """What followed a continued turn was not a turn (a blip): answer the
        continued turn as it was."""
        carried = self._carried
        if carried is None or self._closed or self._task is not None:
            return
        self._carried = None
        self._start_turn(
            Turn(self._ctx, carried.turn_id, utterance=carried.utterance, transcript=carried.text)
        )

    def interrupt(self, reason: str) -> bool:
        """Stop the running turn at once; True if there was one."""
        turn, task = self._turn, self._task
        if task is None or turn is None:
            return False
        heard = turn.record_heard()
        self._cut(turn, task)
        self._metrics.turns.labels(outcome="interrupted").inc()
        if turn.reply_started:
            self._ctx.send(protocol.llm_response_interrupted(heard, turn.turn_id, reason))
            turn.send_metrics(interrupted=True)
        log.info("%s: turn %s interrupted (%s)", self._label, turn.turn_id, reason)
        return True

    def _cut(self, turn: Turn, task: asyncio.Task[None]) -> None:
        self._ctx.speaker.clear()
        task.cancel()
        if not turn.begun:
            # Cut before its task took a step: neither run() nor _run() will
            # ever execute, so give back its streaming decoder (a pooled
            # resource) and report its end here.
            turn.discard()
            task.add_done_callback(lambda _: self._on_turn_done())
        self._cancelled.add(task)
        task.add_done_callback(self._cancelled.discard)
        self._turn = self._task = None

    def open_with(self, make_turn: Callable[[TurnContext, int], Turn]) -> None:
        """The agent speaks first (a phone call's greeting): a turn of its own
        that the person can talk over like any other. Only when idle."""
        if self._closed or self._task is not None:
            return
        self._turn_seq += 1
        self._start_turn(make_turn(self._ctx, self._turn_seq))

    def _start_turn(self, turn: Turn) -> None:
        self._turn = turn
        self._task = asyncio.create_task(self._run(turn), name=f"{self._label}-turn-{turn.turn_id}")

    async def _run(self, turn: Turn) -> None:
        try:
            result = await turn.run()
            self._metrics.turns.labels(outcome=result.outcome).inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not a provider failure: say so plainly and stay usable.
            log.exception("%s: turn %s crashed", self._label, turn.turn_id)
            self._ctx.speaker.clear()
            self._ctx.send(protocol.error(faults.INTERNAL_ERROR_MESSAGE, "internal"))
        finally:
            if self._turn is turn:
                self._turn = self._task = None
            self._on_turn_done()

    async def aclose(self) -> None:
        """Interrupt the running turn and wait for every cancelled one; idempotent."""
        self._closed = True
        self._carried = None
        self.interrupt("session_end")
        tasks = [*self._cancelled]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _joined(first: Utterance, then: Utterance) -> Utterance:
    """Two utterances of one turn as one (the pause between them left out)."""
    return Utterance(
        pcm=first.pcm + then.pcm,
        sample_rate=then.sample_rate,
        speech_ended_at=then.speech_ended_at,
        turn_ended_at=then.turn_ended_at,
        peak_dbfs=max(first.peak_dbfs, then.peak_dbfs),
    )
