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
from media_server.audio import jitter
from media_server.audio.inbound import InboundAudio
from media_server.audio.opus_encoder import SpeechOpusEncoder, sends_opus
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
from media_server.providers.base import Providers, SpeechToTextStream
from media_server.text import ConversationHistory
from media_server.turn import SERVICE_NAMES, Turn, TurnContext
from media_server.types import ProviderError, Stage, Utterance

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 0.5
PC_CLOSE_TIMEOUT_S = 5.0
INBOUND_CLOSE_TIMEOUT_S = 2.0
# Let session_end leave before the transport closes: wait for the data
# channel's buffer to drain (bounded), then a moment for the SCTP packet.
SESSION_END_FLUSH_S = 0.1
SESSION_END_FLUSH_MAX_S = 1.0
# Events queued on the data channel but not yet taken by SCTP. A page that
# stops reading (but keeps the transport up) would otherwise grow this
# without bound; past it, events are dropped until the backlog drains.
MAX_EVENT_BACKLOG_BYTES = 256 * 1024
# Provider errors that no number of retries will fix within a session: the
# key is wrong or the account is out of credit. They end the session at once.
FATAL_ERROR_KINDS = frozenset({"auth", "quota"})


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
        self.speaker = AgentAudioTrack(on_late=metrics.outbound_late.inc)
        self.segmenter = Segmenter(segmenter_config(settings), on_audio=self._on_turn_audio)
        # A turn being decoded while it is spoken, when the STT engine streams.
        self._stt_stream: SpeechToTextStream | None = None
        self._stt_stream_refused = False
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
        self._last_ping: float | None = None  # armed by the first ping; any message refreshes it
        self._inbox = protocol.MessageRateLimit()
        self._rate_error_sent_at = float("-inf")
        self._events_dropped = 0
        self._stage_failures: dict[str, int] = {"stt": 0, "llm": 0, "tts": 0}
        self._provider_down: ProviderError | None = None
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
            jitter.install_on(pc)  # before any packet arrives: ICE has not started
            pc.addTrack(self.speaker)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            sender_mid = next(
                (t.mid for t in pc.getTransceivers() if t.sender.track is self.speaker), None
            )
            if sends_opus(pc.localDescription.sdp, sender_mid):
                self.speaker.encode_with(SpeechOpusEncoder())
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
        if channel is None or channel.readyState != "open" or self.end_reason is not None:
            return
        if channel.bufferedAmount > MAX_EVENT_BACKLOG_BYTES:
            self._events_dropped += 1
            if self._events_dropped == 1:
                log.warning("session %s: peer is not reading events; dropping", self.session_id)
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
                stream = self._take_stt_stream()
                if self._turn_task is None:
                    self._start_turn(utterance=event.utterance, stt_stream=stream)
                else:
                    if stream is not None:
                        stream.cancel()
                    # Speech that ended without reaching the barge-in minimum
                    # while the agent had the floor: a blip, a backchannel
                    # ("mm-hm") or the agent's own echo. Not a new turn.
                    log.debug("session %s: short speech over the agent ignored", self.session_id)
            elif isinstance(event, SpeechDropped):
                if (stream := self._take_stt_stream()) is not None:
                    stream.cancel()
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

    def _on_turn_audio(self, pcm: bytes) -> None:
        """The segmenter's audio of the turn in progress: decode it now."""
        if self._stt_stream is None:
            if self._stt_stream_refused or self._closing:
                return
            open_stream = getattr(self.providers.stt, "open_stream", None)
            self._stt_stream = open_stream() if open_stream is not None else None
            if self._stt_stream is None:  # no streaming engine, or all decoders busy
                self._stt_stream_refused = True
                return
        self._stt_stream.feed(pcm)

    def _take_stt_stream(self) -> SpeechToTextStream | None:
        stream, self._stt_stream = self._stt_stream, None
        self._stt_stream_refused = False
        return stream

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
            turn.send_metrics(interrupted=True)
        log.info("session %s: turn %s interrupted (%s)", self.session_id, turn.turn_id, reason)
        return True

    def _start_turn(
        self,
        *,
        utterance: Utterance | None = None,
        text: str | None = None,
        stt_stream: SpeechToTextStream | None = None,
    ) -> None:
        if self._closing:
            if stt_stream is not None:
                stt_stream.cancel()
            return
        self.interrupt("new_turn")
        self._turn_seq += 1
        turn = Turn(
            self._turn_ctx, self._turn_seq, utterance=utterance, text=text, stt_stream=stt_stream
        )
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
            self._end_if_provider_down()

    def _on_stage_result(self, stage: Stage, err: ProviderError | None) -> None:
        """The error budget (issue "provider fault policy"): consecutive failed
        turns per stage, reset by a success; at the limit, or on an error no
        retry can fix, the session ends once the failing turn has finished."""
        if err is None:
            self._stage_failures[stage] = 0
            return
        self.metrics.errors.labels(stage=stage, kind=err.kind).inc()
        self._stage_failures[stage] += 1
        fatal = err.kind in FATAL_ERROR_KINDS
        if self._provider_down is None and (
            fatal or self._stage_failures[stage] >= self.settings.provider_error_limit
        ):
            self._provider_down = err

    def _end_if_provider_down(self) -> None:
        err = self._provider_down
        if err is None or self._closing:
            return
        service = SERVICE_NAMES[err.stage]
        why = (
            f"The {service} service rejected the server's API key"
            if err.kind == "auth"
            else f"The {service} service is out of quota"
            if err.kind == "quota"
            else f"The {service} service keeps failing"
        )
        log.warning(
            "session %s: ending, %s provider unavailable (%s, %d in a row)",
            self.session_id,
            err.stage,
            err.kind,
            self._stage_failures[err.stage],
        )
        self.send_event(
            protocol.error(
                f"{why}, so this conversation has ended. Please try again later.",
                "provider_unavailable",
                retryable=False,
                stage=err.stage,
            )
        )
        self._close_soon("provider_unavailable")

    # ---- data channel in -------------------------------------------------

    def _on_message(self, raw: str | bytes) -> None:
        if self._closing:
            return
        now = time.monotonic()
        if self._last_ping is not None:
            self._last_ping = now  # any message shows the page is alive
        if not self._inbox.allow(now):
            # Dropped before parsing; one error a second says so, not one per message.
            if now - self._rate_error_sent_at >= 1.0:
                self._rate_error_sent_at = now
                self.send_event(
                    protocol.error("Too many messages at once; some were ignored.", "rate_limited")
                )
            return
        try:
            message = protocol.parse_client_message(raw)
        except protocol.ProtocolError as exc:
            self.send_event(protocol.error(exc.message, exc.code))
            return
        if message.type == "ping":
            self._last_ping = now
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
            elif self._last_ping is not None and now - self._last_ping > s.ping_timeout_s:
                self._close_soon("peer_gone")
            elif self._turn_task is None and now - self.last_activity > s.idle_timeout_s:
                self._close_soon("idle_timeout")
            elif now - self.created_at > s.max_session_s:
                self._close_soon("max_duration")

    # ---- teardown --------------------------------------------------------

    def _close_soon(self, reason: str) -> None:
        if not self._closing:
            asyncio.get_running_loop().create_task(self.close(reason))

    async def _flush_events(self) -> None:
        channel = self._channel
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SESSION_END_FLUSH_MAX_S
        while channel.readyState == "open" and channel.bufferedAmount > 0:
            if loop.time() >= deadline:
                return
            await asyncio.sleep(0.01)
        await asyncio.sleep(SESSION_END_FLUSH_S)

    async def close(self, reason: str = "closed") -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        log.info("session %s: closing (%s)", self.session_id, reason)
        try:
            # Stop the turn first so nothing of it follows session_end.
            self.interrupt("session_end")
            if (stream := self._take_stt_stream()) is not None:
                stream.cancel()
            if self._channel is not None and self._channel.readyState == "open":
                self.send_event(protocol.session_end(reason))
                self.end_reason = reason  # from here on, send_event is a no-op
                await self._flush_events()
            self.end_reason = reason
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
            except Exception as exc:  # pc.close() can raise on odd sessions (AIORTC-NOTES.md)
                log.info(
                    "session %s: pc.close() failed (%s: %s); stopping its transports",
                    self.session_id,
                    type(exc).__name__,
                    str(exc)[:200],
                )
                log.debug("pc.close() failure", exc_info=True)
                await _stop_transports(self.pc)
        finally:
            self._closed.set()
            self.metrics.sessions_ended.labels(reason=reason).inc()
            self._on_closed(self)


async def _stop_transports(pc: RTCPeerConnection) -> None:
    """What ``pc.close()`` does not reach when it raises halfway: on some
    malformed offers the SCTP transport has no DTLS transport and close()
    stops there, leaving the ICE agent's UDP socket and tasks behind."""
    dtls: set[Any] = set(getattr(pc, "_RTCPeerConnection__dtlsTransports", ()))
    for transceiver in pc.getTransceivers():
        dtls.add(transceiver.receiver.transport)
        dtls.add(transceiver.sender.transport)
    if pc.sctp is not None:
        dtls.add(pc.sctp.transport)
    dtls.discard(None)
    ice: set[Any] = set(getattr(pc, "_RTCPeerConnection__iceTransports", ()))
    ice.update(t.transport for t in dtls if getattr(t, "transport", None) is not None)
    for transport in [*dtls, *ice]:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.stop(), PC_CLOSE_TIMEOUT_S)
