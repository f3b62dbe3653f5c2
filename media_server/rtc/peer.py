"""One browser's peer connection: the offer in, the answer out, closed once.

The session owns one of these (as Pipecat's SmallWebRTCConnection is owned by
its transport): everything that touches ``RTCPeerConnection`` directly is
here, so the session speaks only of tracks, channels and states.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media_server.audio.opus_encoder import SpeechOpusEncoder, sends_opus
from media_server.audio.outbound import AgentAudioTrack
from media_server.rtc import jitter
from media_server.rtc.transports import stop_transports

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


class OfferError(Exception):
    """The offer could not be answered (bad SDP and the like)."""


class PeerConnection:
    def __init__(
        self,
        configuration: RTCConfiguration,
        *,
        on_track: Callable[[Any], None],
        on_datachannel: Callable[[Any], None],
        on_state: Callable[[str], None],
        label: str = "",
    ) -> None:
        self.pc = RTCPeerConnection(configuration=configuration)
        self._label = label
        self._closed = False
        self.pc.on("track", on_track)
        self.pc.on("datachannel", on_datachannel)
        self.pc.on("connectionstatechange", lambda: on_state(self.pc.connectionState))

    async def answer(self, offer_sdp: str, speaker: AgentAudioTrack) -> str:
        """The answer SDP, sending ``speaker``; raises ``OfferError`` for an
        offer aiortc refuses."""
        pc = self.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if not any(t.kind == "audio" for t in pc.getTransceivers()):
                raise OfferError("the offer has no audio section")
            jitter.install_on(pc)  # before any packet arrives: ICE has not started
            pc.addTrack(speaker)
            await pc.setLocalDescription(await pc.createAnswer())
            sender_mid = next(
                (t.mid for t in pc.getTransceivers() if t.sender.track is speaker), None
            )
            if sends_opus(pc.localDescription.sdp, sender_mid):
                speaker.encode_with(SpeechOpusEncoder())
        except OfferError:
            raise
        except Exception as exc:
            # aiortc validates SDP with assert and raises assorted exceptions
            # (AIORTC-NOTES.md): all of them mean "bad offer" here.
            raise OfferError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        return pc.localDescription.sdp

    async def close(self) -> None:
        """Close the connection and every transport it opened; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT_S)
        except Exception as exc:  # pc.close() can raise on odd sessions (AIORTC-NOTES.md)
            log.info(
                "%s: pc.close() failed (%s: %s); stopping its transports",
                self._label,
                type(exc).__name__,
                str(exc)[:200],
            )
            log.debug("pc.close() failure", exc_info=True)
            await stop_transports(self.pc, CLOSE_TIMEOUT_S)
