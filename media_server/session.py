"""VoiceSession: one browser conversation, from the offer to the last byte.

It owns the peer connection (rtc/peer.py), the ``events`` channel
(events.py), the inbound audio, the listener (listening/), the agent's
outbound track, the conversation (conversation.py) and the watchdog, and it
holds THE status of the conversation, set in ``_refresh_status`` alone.
``close(reason)`` releases all of it and is safe to call any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from media_server import faults, protocol
from media_server.agents import Agent
from media_server.audio.inbound import InboundAudio
from media_server.audio.outbound import AgentAudioTrack
from media_server.config import Settings
from media_server.conversation import Conversation
from media_server.deadlines import StageDeadlines
from media_server.echo.guard import EchoGuard
from media_server.events import EventChannel
from media_server.ice_servers import IceServers
from media_server.interim import InterimTranscripts
from media_server.listening.end_of_turn import EndOfTurn
from media_server.listening.listener import (
    BargeIn,
    FalseInterruption,
    Hold,
    Listener,
    PauseHeard,
    PersonStarted,
    SpeechIgnored,
    TurnEnded,
)
from media_server.listening.segmenter import segmenter_config
from media_server.listening.vad import SessionVad, SileroPool
from media_server.liveness import Limits, Liveness
from media_server.log_context import SESSION_ID
from media_server.metrics import Metrics
from media_server.providers.base import Providers, SpeechToTextStream
from media_server.rtc.ice import rtc_configuration
from media_server.rtc.peer import PeerConnection
from media_server.text import ConversationHistory
from media_server.turn import TurnContext
from media_server.types import ProviderError, Stage

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 0.5
INBOUND_CLOSE_TIMEOUT_S = 2.0


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
    ) -> None:
        self.session_id = session_id
        SESSION_ID.set(session_id)  # this task's and every task started from it
        self.agent = agent
        self.providers = providers
        self.metrics = metrics
        self._on_closed = on_closed
        label = f"session {session_id}"

        # The same servers the page got from /api/ice-servers (fresh TURN
        # credentials of its own), so a server behind NAT is reachable too.
        ice = IceServers(settings)
        self.peer = PeerConnection(
            rtc_configuration(ice.for_call(), ice.transport_policy),
            on_track=self._on_track,
            on_datachannel=self._on_datachannel,
            on_state=self._on_connection_state,
            label=label,
        )
        self.events = EventChannel(label)
        self.echo_guard = EchoGuard.from_setting(settings.echo_guard)  # our voice, heard back
        late, played = metrics.outbound_late.inc, self.echo_guard.played
        self.speaker = AgentAudioTrack(on_late=late, on_played=played)
        # Its Silero model is leased in accept(), off the loop (~100 ms to load).
        self.vad = SessionVad(
            settings.vad_provider,
            threshold=settings.vad_threshold,
            aggressiveness=settings.vad_aggressiveness,
            pool=vad_pool,
        )
        self.listener = Listener(
            segmenter_config(settings),
            is_speech=self.vad.detector.is_speech,
            barge_in_min_ms=settings.barge_in_min_ms,
            barge_in_confirm_ms=settings.barge_in_confirm_ms,
            end_of_turn=EndOfTurn.from_settings(settings),
            open_stream=self._open_stt_stream,
        )
        self.history = ConversationHistory(settings.history_max_messages)
        self.conversation = Conversation(
            TurnContext(
                agent=agent,
                providers=providers,
                speaker=self.speaker,
                history=self.history,
                deadlines=StageDeadlines.from_settings(settings),
                send=self.events.send,
                on_phase=self._refresh_status,
                on_stage_result=self._on_stage_result,
                observe=metrics.observe_stage,
                on_fallback=self._on_fallback,
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
        )
        self.liveness = Liveness(Limits.from_settings(settings), time.monotonic())
        self.errors = faults.ErrorBudget(settings.provider_error_limit)
        self._fallbacks_told: set[Stage] = set()
        self.status: protocol.Status = "idle"
        self.end_reason: str | None = None
        self._inbound: InboundAudio | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()

    async def accept(self, offer_sdp: str) -> str:
        """Answer an offer; raises ``rtc.peer.OfferError`` for SDP aiortc refuses."""
        answer = await self.peer.answer(offer_sdp, self.speaker)
        await asyncio.to_thread(self.vad.lease)
        await asyncio.to_thread(self.echo_guard.prepare)
        self._watchdog = asyncio.create_task(self._watch(), name=f"session-{self.session_id}-watch")
        return answer

    def _refresh_status(self) -> None:
        """The one place the status changes: the running turn's phase, else
        whether the person is speaking (and whether we wait on an unfinished
        sentence)."""
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

    # ---- peer connection callbacks --------------------------------------

    def _on_track(self, track: Any) -> None:
        if track.kind != "audio" or self._inbound is not None or self._closing:
            return
        self._inbound = InboundAudio(track, self._on_pcm)
        self._inbound.start()

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label != "events" or self.events.attached:
            return
        self.events.attach(channel)
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._close_soon("peer_closed"))
        self.events.send(
            protocol.connection_established(
                self.session_id, self.agent.name, self.agent.id, self._engine_names()
            )
        )
        self.events.send(protocol.status_update(self.status))

    def _on_connection_state(self, state: str) -> None:
        log.info(
            "session %s: connection %s",
            self.session_id,
            state,
            extra={"session_id": self.session_id, "fields": {"connection": state}},
        )
        if state == "connected":
            self.liveness.connected = True
        elif state in ("failed", "closed"):
            self._close_soon(f"peer_{state}")

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
        self._refresh_status()

    def _open_stt_stream(self) -> SpeechToTextStream | None:
        stt = self.providers.stt
        if self._closing or not stt.capabilities.streaming:
            return None
        return stt.open_stream()  # None when all its decoders are busy

    # ---- faults ----------------------------------------------------------

    def _on_stage_result(self, stage: Stage, err: ProviderError | None) -> None:
        if err is not None:
            self.metrics.errors.labels(stage=stage, kind=err.kind).inc()
        self.errors.record(stage, err)

    def _on_fallback(self, stage: Stage, from_engine: str, to_engine: str) -> None:
        self.metrics.fallbacks.labels(stage=stage, **{"from": from_engine, "to": to_engine}).inc()
        if stage in self._fallbacks_told:
            return  # one notice a stage per call is enough
        self._fallbacks_told.add(stage)
        message = faults.fallback_message(stage)
        names = self._engine_names()
        self.events.send(protocol.provider_fallback(stage, from_engine, to_engine, message, names))

    def _engine_names(self) -> dict[str, str]:
        return {k: getattr(self.providers.names, k) for k in ("stt", "llm", "tts")}

    def _on_turn_done(self) -> None:
        self.liveness.activity(time.monotonic())
        self._refresh_status()
        err = self.errors.exhausted
        if err is None or self._closing:
            return
        log.warning(
            "session %s: ending, %s provider unavailable (%s, %d in a row)",
            self.session_id,
            err.stage,
            err.kind,
            self.errors.failures(err.stage),
        )
        self.events.send(faults.session_ended_event(err))
        self._close_soon("provider_unavailable")

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
            self.liveness.activity(now)
            self.conversation.start(text=message.text)
            self._refresh_status()
        elif message.type == "interrupt":
            if self.conversation.interrupt("client"):
                self._refresh_status()
        elif message.type == "end_session":
            self._close_soon("client_ended")

    # ---- deadlines and teardown ------------------------------------------

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            reason = self.liveness.expired(time.monotonic(), busy=self.conversation.busy)
            if reason is not None:
                self._close_soon(reason)

    def _close_soon(self, reason: str) -> None:
        if not self._closing:
            asyncio.get_running_loop().create_task(self.close(reason))

    async def close(self, reason: str = "closed") -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        log.info(
            "session %s: closing (%s)",
            self.session_id,
            reason,
            extra={"session_id": self.session_id, "fields": {"reason": reason}},
        )
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
            if self._inbound is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._inbound.close(), INBOUND_CLOSE_TIMEOUT_S)
            self.speaker.stop()
            await self.peer.close()
            self.vad.give_back()
        finally:
            self._closed.set()
            self.metrics.sessions_ended.labels(reason=reason).inc()
            self._on_closed(self)
