"""VoiceSession: one browser conversation.

It owns the peer connection, the `events` data channel, the inbound audio
consumer, the segmenter, the agent's outbound track, the running turn and the
watchdog, and it holds THE status of the conversation. ``close(reason)``
releases all of it and is safe to call any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from media_server import protocol
from media_server.agents import Agent
from media_server.audio.inbound import InboundAudio
from media_server.audio.outbound import AgentAudioTrack
from media_server.audio.vad import (
    Segmenter,
    SegmenterConfig,
    SpeechDropped,
    SpeechEnded,
    SpeechStarted,
)
from media_server.config import Settings
from media_server.ice import rtc_configuration
from media_server.metrics import Metrics
from media_server.providers.base import ProviderError, Providers, Stage, Utterance
from media_server.text import ConversationHistory
from media_server.turn import Turn, TurnContext

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 0.5
# A page that has pinged once and then goes quiet this long is gone; aiortc
# itself notices a vanished peer only at consent expiry (~30 s).
PING_TIMEOUT_S = 15.0
PC_CLOSE_TIMEOUT_S = 5.0
INBOUND_CLOSE_TIMEOUT_S = 2.0
SESSION_END_FLUSH_S = 0.1  # let the session_end event leave before the transport closes


class SessionError(Exception):
    """The offer could not be answered (bad SDP and the like)."""


def segmenter_config(settings: Settings) -> SegmenterConfig:
    return SegmenterConfig(
        aggressiveness=settings.vad_aggressiveness,
        silence_ms=settings.vad_silence_ms,
        preroll_ms=settings.vad_preroll_ms,
        min_speech_ms=settings.vad_min_speech_ms,
        max_utterance_s=settings.vad_max_utterance_s,
    )


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
    ) -> None:
        self.session_id = session_id
        self.agent = agent
        self.settings = settings
        self.providers = providers
        self.metrics = metrics
        self._on_closed = on_closed

        self.pc = RTCPeerConnection(configuration=rtc_configuration(settings.ice_servers))
        self.speaker = AgentAudioTrack()
        self.segmenter = Segmenter(segmenter_config(settings))
        self.history = ConversationHistory(settings.history_max_messages)
        self.status: protocol.Status = "idle"
        self.end_reason: str | None = None

        self._channel: Any = None
        self._inbound: InboundAudio | None = None
        self._turn: Turn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_seq = 0
        self._cancelled_turns: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._connected = False
        self.created_at = time.monotonic()
        self.last_activity = self.created_at
        self._last_ping: float | None = None
        self._turn_ctx = TurnContext(
            agent=agent,
            providers=providers,
            speaker=self.speaker,
            history=self.history,
            settings=settings,
            send=self.send_event,
            set_status=self.set_status,
            on_stage_result=self._on_stage_result,
            observe=metrics.observe_stage,
        )

    # ---- signaling -----------------------------------------------------

    async def accept(self, offer_sdp: str) -> str:
        """Answer an offer; raises ``SessionError`` for SDP aiortc refuses."""
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise SessionError("the offer has no audio section")
            pc.addTrack(self.speaker)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except SessionError:
            raise
        except Exception as exc:
            # aiortc validates SDP with assert and raises assorted exceptions
            # (AIORTC-NOTES.md): all of them mean "bad offer" here.
            raise SessionError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        self._watchdog = asyncio.create_task(self._watch(), name=f"session-{self.session_id}-watch")
        return pc.localDescription.sdp

    # ---- events out ----------------------------------------------------

    def send_event(self, message: str) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        try:
            channel.send(message)
        except Exception:  # a closing transport must not break a turn
            log.debug("session %s: event dropped", self.session_id, exc_info=True)

    def set_status(self, status: protocol.Status) -> None:
        if status == self.status:
            return
        self.status = status
        self.send_event(protocol.status_update(status))

    # ---- peer connection callbacks --------------------------------------

    def _on_track(self, track: Any) -> None:
        if track.kind != "audio" or self._inbound is not None or self._closing:
            return
        self._inbound = InboundAudio(track, self._on_pcm)
        self._inbound.start()

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label != "events" or self._channel is not None:
            return
        self._channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._close_soon("peer_closed"))
        names = self.providers.names
        self.send_event(
            protocol.connection_established(
                self.session_id,
                self.agent.name,
                self.agent.id,
                {"stt": names.stt, "llm": names.llm, "tts": names.tts},
            )
        )
        self.send_event(protocol.status_update(self.status))

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("session %s: connection %s", self.session_id, state)
        if state == "connected":
            self._connected = True
        elif state in ("failed", "closed"):
            self._close_soon(f"peer_{state}")

    # ---- inbound audio -> turns -----------------------------------------

    def _on_pcm(self, pcm: bytes, now: float) -> None:
        for event in self.segmenter.feed(pcm, now):
            if isinstance(event, SpeechStarted):
                self.last_activity = now
                if self._turn_task is None:
                    self.set_status("listening")
            elif isinstance(event, SpeechEnded):
                self.last_activity = now
                self._start_turn(utterance=event.utterance)
            elif isinstance(event, SpeechDropped):
                if self._turn_task is None and self.status == "listening":
                    self.set_status("idle")
        # Barge-in: the person has been talking long enough over a running turn.
        if (
            self._turn_task is not None
            and self.segmenter.in_speech
            and self.segmenter.speech_ms >= self.settings.barge_in_min_ms
        ):
            self.interrupt("barge_in")
            self.set_status("listening")

    def interrupt(self, reason: str) -> bool:
        """Stop the running turn at once; True if there was one."""
        turn, task = self._turn, self._turn_task
        if task is None or turn is None:
            return False
        heard = turn.record_heard()
        self.speaker.clear()
        task.cancel()
        self._cancelled_turns.add(task)
        task.add_done_callback(self._cancelled_turns.discard)
        self._turn = self._turn_task = None
        self.metrics.turns.labels(outcome="interrupted").inc()
        if turn.reply_started:
            self.send_event(
                protocol.encode(
                    "llm_response",
                    text=heard,
                    is_final=True,
                    turn_id=turn.turn_id,
                    interrupted=True,
                    reason=reason,
                )
            )
        log.info("session %s: turn %s interrupted (%s)", self.session_id, turn.turn_id, reason)
        return True

    def _start_turn(self, *, utterance: Utterance | None = None, text: str | None = None) -> None:
        if self._closing:
            return
        self.interrupt("new_turn")
        self._turn_seq += 1
        turn = Turn(self._turn_ctx, self._turn_seq, utterance=utterance, text=text)
        self._turn = turn
        self._turn_task = asyncio.create_task(
            self._run_turn(turn), name=f"session-{self.session_id}-turn-{turn.turn_id}"
        )

    async def _run_turn(self, turn: Turn) -> None:
        try:
            result = await turn.run()
            self.metrics.turns.labels(outcome=result.outcome).inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not a provider failure: say so plainly and stay usable.
            log.exception("session %s: turn %s crashed", self.session_id, turn.turn_id)
            self.speaker.clear()
            self.send_event(
                protocol.error("Something went wrong on the server — please try again.", "internal")
            )
            self.set_status("idle")
        finally:
            if self._turn is turn:
                self._turn = self._turn_task = None
                self.last_activity = time.monotonic()

    def _on_stage_result(self, stage: Stage, err: ProviderError | None) -> None:
        if err is not None:
            self.metrics.errors.labels(stage=stage, kind=err.kind).inc()

    # ---- data channel in -------------------------------------------------

    def _on_message(self, raw: str | bytes) -> None:
        try:
            message = protocol.parse_client_message(raw)
        except protocol.ProtocolError as exc:
            self.send_event(protocol.error(exc.message, exc.code))
            return
        if message.type == "ping":
            self._last_ping = time.monotonic()
            self.send_event(protocol.pong())
        elif message.type == "text_input":
            self.last_activity = time.monotonic()
            self._start_turn(text=message.text)
        elif message.type == "interrupt":
            if self.interrupt("client"):
                self.set_status("idle")
        elif message.type == "end_session":
            self._close_soon("client_ended")

    # ---- deadlines -------------------------------------------------------

    async def _watch(self) -> None:
        s = self.settings
        while not self._closing:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            now = time.monotonic()
            if not self._connected and now - self.created_at > s.connect_timeout_s:
                self._close_soon("connect_timeout")
            elif self._last_ping is not None and now - self._last_ping > PING_TIMEOUT_S:
                self._close_soon("peer_gone")
            elif self._turn_task is None and now - self.last_activity > s.idle_timeout_s:
                self._close_soon("idle_timeout")
            elif now - self.created_at > s.max_session_s:
                self._close_soon("max_duration")

    # ---- teardown --------------------------------------------------------

    def _close_soon(self, reason: str) -> None:
        if not self._closing:
            asyncio.get_running_loop().create_task(self.close(reason))

    async def close(self, reason: str = "closed") -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self.end_reason = reason
        log.info("session %s: closing (%s)", self.session_id, reason)
        try:
            if self._channel is not None and self._channel.readyState == "open":
                self.send_event(protocol.session_end(reason))
                await asyncio.sleep(SESSION_END_FLUSH_S)
            self.interrupt("session_end")
            tasks = [*self._cancelled_turns]
            if self._watchdog is not None and self._watchdog is not asyncio.current_task():
                tasks.append(self._watchdog)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._inbound is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._inbound.close(), INBOUND_CLOSE_TIMEOUT_S)
            self.speaker.stop()
            try:
                await asyncio.wait_for(self.pc.close(), PC_CLOSE_TIMEOUT_S)
            except Exception:  # pc.close() can raise on odd sessions (AIORTC-NOTES.md)
                log.warning("session %s: pc.close() failed", self.session_id, exc_info=True)
        finally:
            self._closed.set()
            self.metrics.sessions_ended.labels(reason=reason).inc()
            self._on_closed(self)
