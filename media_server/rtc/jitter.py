"""Inbound audio without aiortc's 80 ms of prefetch.

aiortc's audio receiver hands a packet to the decoder only once four more
have arrived (``JitterBuffer(capacity=16, prefetch=4)``): 80 ms on every
frame the person says (AIORTC-NOTES.md). That buffer does not smooth timing
(it releases on arrival, not on a clock); it only lets up to four packets
arrive out of order. For a server that listens rather than plays, those
80 ms are added to every end of turn and every barge-in.

An Opus RTP packet is a whole frame, so this buffer releases each packet as
soon as it is next in sequence. Packets that arrive ahead of a missing one
wait for it, but only until ``SKIP_AFTER`` of them are waiting: then the
missing one is taken as lost. (aiortc waits until its 16-packet ring
overflows, and since it releases one frame per arriving packet it stays
those ~300 ms behind for the rest of the call; here a loss costs at most
``SKIP_AFTER`` frames of delay, and that bound does not grow with more
losses.)

It replaces the receiver's buffer through a private attribute: ``install``
checks what it replaces and leaves aiortc's in place if the attribute is not
what it expects (another aiortc version), so the worst case is the old delay.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame

log = logging.getLogger(__name__)

CAPACITY = 16  # as aiortc's: how far ahead of a missing packet the ring reaches
# Packets waiting behind a missing one before it counts as lost (60 ms):
# reordering on real networks is a packet or two.
SKIP_AFTER = 3
_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


class ImmediateAudioJitterBuffer(JitterBuffer):
    """One packet per frame; each released as soon as it is next in sequence."""

    def __init__(self) -> None:
        super().__init__(capacity=CAPACITY)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        # aiortc's add() has stored the packet (or dropped it as too late) and
        # moved _origin past anything the ring could not hold; the next
        # expected packet's slot is at _origin.
        assert self._origin is not None
        ring, capacity, origin = self._packets, self._capacity, self._origin
        skip = 0
        if ring[origin % capacity] is None:
            waiting = [i for i in range(1, capacity) if ring[(origin + i) % capacity] is not None]
            if len(waiting) < SKIP_AFTER:
                return None  # give the missing packet a little longer
            skip = waiting[0]  # it is lost: go on from the first one that came
        packet = ring[(origin + skip) % capacity]
        assert packet is not None
        self.remove(skip + 1)
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def install(receiver: Any) -> bool:
    """Give an audio ``RTCRtpReceiver`` the immediate buffer; True if it took."""
    current = getattr(receiver, _ATTRIBUTE, None)
    if type(current) is not JitterBuffer:
        log.warning(
            "aiortc receiver has no %s JitterBuffer; keeping its prefetch delay", _ATTRIBUTE
        )
        return False
    setattr(receiver, _ATTRIBUTE, ImmediateAudioJitterBuffer())
    return True


def install_on(pc: Any) -> None:
    """Give every audio receiver of a peer connection the immediate buffer.

    Call it after ``setRemoteDescription`` (the transceivers exist) and before
    ICE completes (no packet has arrived yet).
    """
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            install(transceiver.receiver)
