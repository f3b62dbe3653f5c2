"""The ``events`` data channel of one session: JSON events out, messages in.

Out: events are dropped, never queued without bound, when the page stops
reading (the channel's backlog passes ``MAX_EVENT_BACKLOG_BYTES``), and
nothing follows ``session_end``. In: a token bucket drops floods before they
are parsed (one error a second says so), and malformed messages become one
``error`` event each. The session gets only well-formed messages.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from media_server import faults, protocol

log = logging.getLogger(__name__)

# Events queued on the data channel but not yet taken by SCTP. A page that
# stops reading (but keeps the transport up) would otherwise grow this
# without bound; past it, events are dropped until the backlog drains.
MAX_EVENT_BACKLOG_BYTES = 256 * 1024
# Let session_end leave before the transport closes: wait for the data
# channel's buffer to drain (bounded), then a moment for the SCTP packet.
SESSION_END_FLUSH_S = 0.1
SESSION_END_FLUSH_MAX_S = 1.0
RATE_ERROR_EVERY_S = 1.0


class EventChannel:
    def __init__(self, label: str) -> None:
        self._label = label
        self._channel: Any = None
        self._ended = False
        self.dropped = 0
        self._inbox = protocol.MessageRateLimit()
        self._rate_error_sent_at = float("-inf")

    @property
    def attached(self) -> bool:
        return self._channel is not None

    @property
    def open(self) -> bool:
        return self._channel is not None and self._channel.readyState == "open"

    def attach(self, channel: Any) -> None:
        self._channel = channel

    def send(self, message: str) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open" or self._ended:
            return
        if channel.bufferedAmount > MAX_EVENT_BACKLOG_BYTES:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("%s: peer is not reading events; dropping", self._label)
            return
        try:
            channel.send(message)
        except Exception:  # a closing transport must not break a turn
            log.debug("%s: event dropped", self._label, exc_info=True)

    def receive(self, raw: str | bytes, now: float) -> protocol.ClientMessage | None:
        """A well-formed message from the page, or None (answered with an error
        event, or dropped by the rate limit)."""
        if not self._inbox.allow(now):
            # Dropped before parsing; one error a second says so, not one per message.
            if now - self._rate_error_sent_at >= RATE_ERROR_EVERY_S:
                self._rate_error_sent_at = now
                self.send(protocol.error(faults.RATE_LIMITED_MESSAGE, "rate_limited"))
            return None
        try:
            return protocol.parse_client_message(raw)
        except protocol.ProtocolError as exc:
            self.send(protocol.error(exc.message, exc.code))
            return None

    async def end(self, reason: str) -> None:
        """Send ``session_end`` and let it leave (bounded); nothing is sent after."""
        if self.open and not self._ended:
            self.send(protocol.session_end(reason))
            self._ended = True
            await self._flush()
        self._ended = True

    async def _flush(self) -> None:
        channel = self._channel
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SESSION_END_FLUSH_MAX_S
        while channel.readyState == "open" and channel.bufferedAmount > 0:
            if loop.time() >= deadline:
                return
            await asyncio.sleep(0.01)
        await asyncio.sleep(SESSION_END_FLUSH_S)
