"""When a session has outlived its welcome: the deadlines, as a pure function.

The session's watchdog calls ``Liveness.expired(now)`` every half second;
the first deadline passed names the reason the session ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from media_server.config import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    connect_timeout_s: float  # offer answered -> ICE and DTLS connected
    ping_timeout_s: float  # once the page pings: silence before it counts as gone
    idle_timeout_s: float  # no speech, text or turn
    max_session_s: float  # whatever happens

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(s.connect_timeout_s, s.ping_timeout_s, s.idle_timeout_s, s.max_session_s)


class Liveness:
    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.created_at = now
        self.last_activity = now
        self.connected = False
        self._last_ping: float | None = None  # armed by the first ping

    def heard_from_page(self, now: float, *, ping: bool = False) -> None:
        """Any message shows the page is alive; the first ping arms the deadline."""
        if ping or self._last_ping is not None:
            self._last_ping = now

    def activity(self, now: float) -> None:
        self.last_activity = now

    def expired(self, now: float, *, busy: bool) -> str | None:
        """Why the session must end now, or None; ``busy``: a turn is running."""
        limits = self.limits
        if not self.connected and now - self.created_at > limits.connect_timeout_s:
            return "connect_timeout"
        if self._last_ping is not None and now - self._last_ping > limits.ping_timeout_s:
            return "peer_gone"
        if not busy and now - self.last_activity > limits.idle_timeout_s:
            return "idle_timeout"
        if now - self.created_at > limits.max_session_s:
            return "max_duration"
        return None
