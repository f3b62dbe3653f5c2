"""VoiceSession: one conversation, from the first byte to the last.

It owns the call's transport (``transport.py``: a browser's WebRTC peer by
default, or a phone line), the listener (listening/), the conversation
(conversation.py) and the watchdog, and it holds THE status of the
conversation, set in ``_refresh_status`` alone. ``close(reason)`` releases
all of it and is safe to call any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from media_server import faults, protocol
from media_server.agents import Agent
from media_server.config import Settings
from media_server.conversation import Conversation
from media_server.deadlines import StageDeadlines
from media_server.echo.guard import EchoGuard
from media_server.interim import InterimTranscripts
from media_server.listening.decisions import (
    BargeIn,
    FalseInterruption,
    Hold,
    PauseHeard,
    PersonStarted,
    SpeechIgnored,
    TurnEnded,
)
from media_server.listening.listener import Listener
from media_server.listening.vad import SessionVad, SileroPool
from media_server.liveness import Limits, Liveness
from media_server.log_context import SESSION_ID
from media_server.metrics import Metrics
from media_server.preemptive import Preemption, pauses_start_replies
from media_server.providers.base import Providers, SpeechToTextStream
from media_server.rtc.call import WebRtcTransport
from media_server.text import ConversationHistory
from media_server.tools.acting import SessionActing
from media_server.transport import CallHooks, CallTransport
from media_server.turn import TurnContext
from media_server.types import Stage

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 0.5


class VoiceSession:
    def __init__(
        self,
        *,
        session_id: str,
        agent: Agent,
        settings: Settings,
        providers: Providers,
        metrics: Metrics,
        on_closed: Callable[[VoiceSession], None] = lambda s: None,
        vad_pool: SileroPool | None = None,
        transport: CallTransport | None = None,
        acting: SessionActing | None = None,
    ) -> None:
        """``transport``: the line the call runs on; a WebRTC peer if None."""
        self.session_id = session_id
        SESSION_ID.set(session_id)  # this task's and every task started from it
        self.agent = agent
        self.providers = providers
        self.metrics = metrics
        self._on_closed = on_closed
        self.acting = acting  # its tools and its conversation record, if the agent acts
        tools = acting.tools if acting is not None else None
        label = f"session {session_id}"

        # Our own voice heard back is taken out of the microphone (WebRTC
        # calls: the guard hears what their track plays; a phone line's
        # microphone passes untouched).
        self.echo_guard = EchoGuard.from_setting(settings.echo_guard)
        if transport is None:
            late, played = metrics.outbound_late.inc, self.echo_guard.played
            rtc = WebRtcTransport(settings, session_id=session_id, on_late=late, on_played=played)
            rtc.bind_page(self._on_events_open, self._on_message)
            transport = rtc
        self.transport = transport
        self.events = transport.events
        self.speaker = transport.speaker
        transport.bind(CallHooks(self._on_pcm, self._on_connected, self.close_soon))
        # Its Silero model is leased in accept(), off the loop (~100 ms to load).
        self.vad = SessionVad.from_settings(settings, vad_pool)
        self.listener = Listener.from_settings(
            settings,
            is_speech=self.vad.detector.is_speech,
            transcribe_pauses=pauses_start_replies(settings, providers.stt),
            open_stream=self._open_stt_stream,
        )
        self.history = ConversationHistory(settings.history_max_messages)
        self.faults = faults.CallFaults(settings.provider_error_limit, metrics, self.events.send)
        self.conversation = Conversation(
            TurnContext(
                agent=agent,
                providers=providers,
                speaker=self.speaker,
                history=self.history,
                deadlines=StageDeadlines.from_settings(settings),
                send=self.events.send,
                on_phase=self._refresh_status,
                on_stage_result=self.faults.stage_result,
                observe=metrics.observe_stage,
                on_fallback=self._on_fallback,
                tools=tools,
                on_turn_end=acting.record.turn if acting is not None else lambda r: None,
            ),
            metrics,
            label=label,
            on_turn_done=self._on_turn_done,
        )
        self.interim = InterimTranscripts(
            providers.stt,
            self.listener,
            metrics,
            send=self.events.send,
            conversation=self.conversation,
            on_heard=self._refresh_status,
            timeout_s=settings.stt_timeout_s,
            max_speculative=settings.turn_max_speculative,
            label=label,
            preemption=Preemption.from_settings(
                settings, providers.llm, self.history, agent, metrics, label, tools=tools
            ),
        )
        self.liveness = Liveness(Limits.from_settings(settings), time.monotonic())
        # Run after each turn, however it ended (a phone line's hang-up rule).
        self.after_turn: list[Callable[[], None]] = []
        self.status: protocol.Status = "idle"
        self.end_reason: str | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()

    async def accept(self, offer_sdp: str) -> str:
        """Answer a WebRTC offer; raises ``rtc.peer.OfferError`` for SDP aiortc refuses."""
        if not isinstance(self.transport, WebRtcTransport):
            raise TypeError("accept() answers WebRTC offers; a phone line starts with start()")
        answer = await self.transport.answer(offer_sdp)
        await self.start()
        return answer

    async def start(self) -> None:
        """Ready to hear the caller: the VAD model leased, the watchdog on."""
        await asyncio.to_thread(self.vad.lease)
        self._watchdog = asyncio.create_task(self._watch(), name=f"session-{self.session_id}-watch")

    def _refresh_status(self) -> None:
        """The one place the status changes: the running turn's phase, else whether the
        person is speaking (and whether we wait on an unfinished sentence)."""
        listener = self.listener
        status = self.conversation.phase or (
            "still_listening"
            if listener.waiting_on_unfinished
            else "listening"
            if listener.person_speaking
            else "idle"
        )
        if status != self.status:
            self.status = status
            self.events.send(protocol.status_update(status))

    # ---- transport callbacks ---------------------------------------------

    def _on_events_open(self) -> None:
        self.events.send(
            protocol.connection_established(
                self.session_id, self.agent.name, self.agent.id, self.providers.names.by_stage()
            )
        )
        self.events.send(protocol.status_update(self.status))

    def _on_connected(self) -> None:
        self.liveness.connected = True

    # ---- the person's audio -> the listener's decisions -----------------

    def _on_pcm(self, pcm: bytes, now: float) -> None:
        if self._closing:
            return
        conversation, pcm = self.conversation, self.echo_guard.clean(pcm, now)
        for decision in self.listener.feed(pcm, now, agent_has_floor=conversation.busy):
            if isinstance(decision, PersonStarted):
                self.liveness.activity(now)
            elif isinstance(decision, PauseHeard):
                self.interim.on_pause(decision)
            elif isinstance(decision, TurnEnded):
                self.liveness.activity(now)
                self.interim.turn_over()
                conversation.start(
                    utterance=decision.utterance,
                    stt_stream=decision.stt_stream,
                    transcript=decision.transcript,
                    llm=self.interim.adopt(decision.transcript),
                )
            elif isinstance(decision, Hold):
                # Talking on before the agent said a word is the same turn;
                # over its voice, it may be an interruption: hold the audio.
                if not conversation.continue_turn():
                    self.speaker.hold()
            elif isinstance(decision, BargeIn):
                if not conversation.continue_turn():
                    conversation.interrupt("barge_in")
            elif isinstance(decision, FalseInterruption):
                self.speaker.release()  # on from the very next sample
            elif isinstance(decision, SpeechIgnored):
                self.interim.turn_over()
                conversation.resume_carried()  # what followed was no turn
                if decision.reason == "over_agent":
                    self.liveness.activity(now)
        self.interim.still_paused(self.listener.current_pause)
        self._refresh_status()

    def _open_stt_stream(self) -> SpeechToTextStream | None:
        stt = self.providers.stt
        if self._closing or not stt.capabilities.streaming:
            return None
        return stt.open_stream()  # None when all its decoders are busy

    # ---- faults ----------------------------------------------------------

    def _on_fallback(self, stage: Stage, from_engine: str, to_engine: str) -> None:
        self.faults.fallback(stage, from_engine, to_engine, self.providers.names.by_stage())

    def _on_turn_done(self) -> None:
        self.liveness.activity(time.monotonic())
        self._refresh_status()
        for hook in self.after_turn:
            if not self._closing:
                hook()
        if not self._closing and self.faults.end_if_exhausted(f"session {self.session_id}"):
            self.close_soon("provider_unavailable")

    # ---- data channel in -------------------------------------------------

    def _on_message(self, raw: str | bytes) -> None:
        if self._closing:
            return
        now = time.monotonic()
        self.liveness.heard_from_page(now)
        message = self.events.receive(raw, now)
        if message is None:
            return
        if message.type == "ping":
            self.liveness.heard_from_page(now, ping=True)
            self.events.send(protocol.pong())
        elif message.type == "text_input":
            self.text_in(message.text)
        elif message.type == "interrupt":
            if self.conversation.interrupt("client"):
                self._refresh_status()
        elif message.type == "end_session":
            self.close_soon("client_ended")

    def text_in(self, text: str) -> None:
        """A turn from text: typed on the page, or keys pressed on a phone."""
        if self._closing:
            return
        self.liveness.activity(time.monotonic())
        self.conversation.start(text=text)
        self._refresh_status()

    # ---- deadlines and teardown ------------------------------------------

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            reason = self.liveness.expired(time.monotonic(), busy=self.conversation.busy)
            if reason is not None:
                self.close_soon(reason)

    def close_soon(self, reason: str) -> None:
        if not self._closing:
            asyncio.get_running_loop().create_task(self.close(reason))

    async def close(self, reason: str = "closed") -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        fields = {"session_id": self.session_id, "fields": {"reason": reason}}
        log.info("session %s: closing (%s)", self.session_id, reason, extra=fields)
        try:
            # Stop the turn first so nothing of it follows session_end.
            self.conversation.interrupt("session_end")
            self.listener.close()
            self.end_reason = reason
            await self.events.end(reason)
            tasks = [self.conversation.aclose(), self.interim.aclose()]
            if self._watchdog is not None and self._watchdog is not asyncio.current_task():
                self._watchdog.cancel()
                tasks.append(self._watchdog)
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.acting is not None:
                await self.acting.record.close(reason)
            await self.transport.close()
            self.vad.give_back()
        finally:
            self._closed.set()
            self.metrics.sessions_ended.labels(reason=reason).inc()
            self._on_closed(self)
