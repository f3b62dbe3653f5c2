"""Transcripts of a turn while it is being spoken.

At each pause the listener reports (``PauseHeard``), this asks for the words
so far: from the turn's streaming decode when the engine streams (free: the
audio is already decoded), else, with a batch engine (cloud STT), by
transcribing the turn so far speculatively, at most ``max_speculative``
times a turn (each is a billed request; counted in /metrics). The text goes
to the listener, whose end-of-turn policy reads it, and to the page as an
interim ``transcription`` (``is_final: false``).

A speculative transcript is never acted on by itself: the turn is committed
by the listener, and only a transcript of the whole turn (nothing said after
its pause) stands for the turn's own transcription; any other is discarded.
One request at a time: a newer pause cancels the older one. A transcript
of the whole turn may start a preemptive reply (preemptive.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from media_server import protocol
from media_server.conversation import Conversation
from media_server.listening.decisions import PauseHeard
from media_server.listening.listener import Listener
from media_server.metrics import Metrics
from media_server.preemptive import AdoptedLLM, Preemption
from media_server.providers.base import SpeechToText
from media_server.types import ProviderError, Transcript, Utterance

log = logging.getLogger(__name__)


class InterimTranscripts:
    def __init__(
        self,
        stt: SpeechToText,
        listener: Listener,
        metrics: Metrics,
        *,
        send: Callable[[str], None],
        conversation: Conversation,
        on_heard: Callable[[], None],
        timeout_s: float,
        max_speculative: int,
        label: str,
        preemption: Preemption | None = None,
    ) -> None:
        self._stt = stt
        self._listener = listener
        self._metrics = metrics
        self._send = send
        # Interim words carry the id of the turn they will be, after the words
        # of a turn it continues.
        self._conversation = conversation
        self._on_heard = on_heard
        self._timeout_s = timeout_s
        self._max_speculative = max_speculative
        self._label = label
        self._preemption = preemption
        self._task: asyncio.Task[None] | None = None
        self._speculative = 0  # requests this turn
        self._closed = False

    def on_pause(self, pause: PauseHeard) -> None:
        if self._closed:
            return
        self._cancel()
        stream, pcm = pause.stt_stream, pause.pcm
        source: Callable[[], Awaitable[Transcript]]
        if stream is not None:
            source = stream.interim
            # A partial decode: its final one is better, the turn finishes it.
            covers_turn = self._stt.capabilities.final_interims
        elif not self._stt.capabilities.streaming and self._speculative < self._max_speculative:
            self._speculative += 1
            self._metrics.speculative_stt.inc()
            source = lambda: self._stt.transcribe(Utterance(pcm=pcm))  # noqa: E731
            covers_turn = True
        else:
            return
        self._task = asyncio.create_task(
            self._hear(pause.pause, source, covers_turn), name=f"{self._label}-interim"
        )
        self._listener.transcript_requested(pause.pause)

    def turn_over(self) -> None:
        """The turn ended (or was dropped): nothing pending matters any more."""
        self._cancel()
        if self._speculative:
            self._metrics.speculative_stt_per_turn.observe(self._speculative)
        self._speculative = 0

    def adopt(self, transcript: str | None) -> AdoptedLLM | None:
        """The turn ended: the model to answer it with (a preemptive reply
        started on these words), or None: the turn asks its own."""
        return self._preemption.adopt(transcript) if self._preemption else None

    def still_paused(self, pause: int | None) -> None:
        """The listener's pause now: a preemptive reply from another is dropped."""
        if self._preemption is not None:
            self._preemption.still_paused(pause)

    async def aclose(self) -> None:
        if self._preemption is not None:
            await self._preemption.aclose()
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _hear(
        self, pause: int, source: Callable[[], Awaitable[Transcript]], covers_turn: bool
    ) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                transcript = await source()
        except (ProviderError, TimeoutError) as exc:
            # Not the person's problem: the turn transcribes itself when it ends
            # (and reports the failure if it is lasting). A request that no
            # retry fixes (a bad key, no quota) is not made again: each is billed.
            log.info("%s: interim transcript failed (%r)", self._label, exc)
            if isinstance(exc, ProviderError) and not exc.retryable:
                self._max_speculative = 0
            self._listener.transcript_missing(pause)
            return
        text = transcript.text.strip()
        if not text:
            self._listener.transcript_missing(pause)
            return
        if not self._listener.interim_transcript(pause, text, covers_turn=covers_turn):
            return
        conversation = self._conversation
        shown = f"{conversation.carried_text} {text}".strip()
        # Words that read as unfinished ("…an appointment for") say the person
        # is going on: a reply to them now would be paid for and thrown away.
        if covers_turn and self._preemption and not self._listener.waiting_on_unfinished:
            self._preemption.start(pause, text, shown)
        self._send(protocol.transcription(shown, conversation.next_turn_id, is_final=False))
        self._on_heard()
