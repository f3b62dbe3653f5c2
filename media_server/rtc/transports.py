"""Stopping what ``RTCPeerConnection.close()`` leaves behind when it raises.

On some malformed offers aiortc's SCTP transport has no DTLS transport and
``close()`` raises there, before it stops the ICE agent: its UDP socket and
tasks would live on (AIORTC-NOTES.md). aiortc keeps its transports in
name-mangled private sets, read here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import RTCPeerConnection

_DTLS_TRANSPORTS = "_RTCPeerConnection__dtlsTransports"
_ICE_TRANSPORTS = "_RTCPeerConnection__iceTransports"


async def stop_transports(pc: RTCPeerConnection, timeout_s: float) -> None:
    """Stop every DTLS and ICE transport of ``pc``, each within ``timeout_s``."""
    dtls: set[Any] = set(getattr(pc, _DTLS_TRANSPORTS, ()))
    for transceiver in pc.getTransceivers():
        dtls.add(transceiver.receiver.transport)
        dtls.add(transceiver.sender.transport)
    if pc.sctp is not None:
        dtls.add(pc.sctp.transport)
    dtls.discard(None)
    ice: set[Any] = set(getattr(pc, _ICE_TRANSPORTS, ()))
    ice.update(t.transport for t in dtls if getattr(t, "transport", None) is not None)
    for transport in [*dtls, *ice]:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.stop(), timeout_s)
