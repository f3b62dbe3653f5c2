"""WebRTC as a call transport: the peer connection, its ``events`` data
channel, the inbound track and the agent's outbound track, owned together.

The session sees only ``CallHooks`` (audio in, connected, gone) and, for the
page's own messages, ``bind_page`` (the data channel opened, a message came).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from media_server.audio.inbound import InboundAudio
from media_server.audio.outbound import AgentAudioTrack
from media_server.config import Settings
from media_server.events import EventChannel
from media_server.ice_servers import IceServers
from media_server.rtc.ice import rtc_configuration
from media_server.rtc.peer import PeerConnection
from media_server.transport import CallHooks

log = logging.getLogger(__name__)

INBOUND_CLOSE_TIMEOUT_S = 2.0


class WebRtcTransport:
    kind = "webrtc"

    def __init__(
        self,
        settings: Settings,
        *,
        session_id: str,
        on_late: Callable[[], object],
        on_played: Callable[[bytes, float], object] | None = None,
    ) -> None:
        """``on_played(pcm, at)``: each frame of the agent's voice as it leaves
        (the echo guard's reference)."""
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
        self._session_id = session_id
        self.events = EventChannel(label)
        self.speaker = AgentAudioTrack(on_late=on_late, on_played=on_played)
        self._hooks: CallHooks | None = None
        self._on_page_open: Callable[[], None] = lambda: None
        self._on_page_message: Callable[[str | bytes], None] = lambda raw: None
        self._inbound: InboundAudio | None = None
        self._closing = False

    def bind(self, hooks: CallHooks) -> None:
        self._hooks = hooks

    def bind_page(
        self, on_open: Callable[[], None], on_message: Callable[[str | bytes], None]
    ) -> None:
        self._on_page_open = on_open
        self._on_page_message = on_message

    async def answer(self, offer_sdp: str) -> str:
        """Raises ``rtc.peer.OfferError`` for SDP aiortc refuses."""
        return await self.peer.answer(offer_sdp, self.speaker)

    def _on_track(self, track: Any) -> None:
        if track.kind != "audio" or self._inbound is not None or self._closing:
            return
        if self._hooks is None:
            return
        self._inbound = InboundAudio(track, self._hooks.on_pcm)
        self._inbound.start()

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label != "events" or self.events.attached:
            return
        self.events.attach(channel)
        channel.on("message", self._on_page_message)
        channel.on("close", lambda: self._gone("peer_closed"))
        self._on_page_open()

    def _on_connection_state(self, state: str) -> None:
        log.info(
            "session %s: connection %s",
            self._session_id,
            state,
            extra={"session_id": self._session_id, "fields": {"connection": state}},
        )
        if state == "connected" and self._hooks is not None:
            self._hooks.on_connected()
        elif state in ("failed", "closed"):
            self._gone(f"peer_{state}")

    def _gone(self, reason: str) -> None:
        if self._hooks is not None and not self._closing:
            self._hooks.on_gone(reason)

    async def close(self) -> None:
        self._closing = True
        if self._inbound is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._inbound.close(), INBOUND_CLOSE_TIMEOUT_S)
        self.speaker.stop()
        await self.peer.close()
