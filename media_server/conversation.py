"""The agent's side of a conversation: one turn at a time, cut short on demand.

A new turn interrupts the running one; an interrupted turn keeps in the
history only what the person heard of its reply, and says so to the page
(the final ``llm_response`` marked interrupted, and its ``turn_metrics``).
Cancelled turns are awaited by ``aclose()``, so none outlives the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from media_server import faults, protocol
from media_server.metrics import Metrics
from media_server.providers.base import SpeechToTextStream
from media_server.turn import Phase, Turn, TurnContext
from media_server.types import Utterance

log = logging.getLogger(__name__)


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
        self._closed = False

    @property
    def busy(self) -> bool:
        """A turn is running: the agent holds the floor."""
        return self._task is not None

    @property
    def next_turn_id(self) -> int:
        """The id the next turn will have (interim transcripts carry it)."""
        return self._turn_seq + 1

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
    ) -> None:
        """Answer this utterance or text, cutting short the turn before it.
        ``transcript``: the utterance's words, if already transcribed."""
        if self._closed:
            if stt_stream is not None:
                stt_stream.cancel()
            return
        self.interrupt("new_turn")
        self._turn_seq += 1
        turn = Turn(
            self._ctx,
            self._turn_seq,
            utterance=utterance,
            text=text,
            stt_stream=stt_stream,
            transcript=transcript,
        )
        self._turn = turn
        self._task = asyncio.create_task(self._run(turn), name=f"{self._label}-turn-{turn.turn_id}")

    def interrupt(self, reason: str) -> bool:
        """Stop the running turn at once; True if there was one."""
        turn, task = self._turn, self._task
        if task is None or turn is None:
            return False
        heard = turn.record_heard()
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
        self._metrics.turns.labels(outcome="interrupted").inc()
        if turn.reply_started:
            self._ctx.send(protocol.llm_response_interrupted(heard, turn.turn_id, reason))
            turn.send_metrics(interrupted=True)
        log.info("%s: turn %s interrupted (%s)", self._label, turn.turn_id, reason)
        return True

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
        self.interrupt("session_end")
        tasks = [*self._cancelled]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
