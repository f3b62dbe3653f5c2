"""The live sessions of one app: the only cross-session state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

from media_server.session import VoiceSession
from media_server.workers import SessionCount


class CapacityError(Exception):
    pass


class ShuttingDown(CapacityError):
    """No new sessions: the server is ending the ones it has."""


class SessionRegistry:
    def __init__(self, max_sessions: int, count: SessionCount | None = None) -> None:
        self.max_sessions = max_sessions
        # With --workers the count is shared: /health and MAX_SESSIONS are
        # about the whole server, while each worker owns its own sessions.
        self._count = count if count is not None else SessionCount()
        self._sessions: dict[str, VoiceSession] = {}
        self.closing = False

    def __len__(self) -> int:
        """Sessions open (or being answered) on the whole server."""
        return self._count.value

    def get(self, session_id: str) -> VoiceSession | None:
        return self._sessions.get(session_id)

    def reserve(self) -> str:
        """Claim a slot before the (slow) SDP work, so bursts cannot overshoot."""
        if self.closing:
            raise ShuttingDown
        if not self._count.try_acquire(self.max_sessions):
            raise CapacityError
        return uuid.uuid4().hex[:16]

    def release_reservation(self) -> None:
        self._count.release()

    def add(self, session: VoiceSession) -> None:
        """A reserved slot becomes a live session (the slot stays taken)."""
        self._sessions[session.session_id] = session

    def remove(self, session: VoiceSession) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            self._count.release()

    def local_sessions(self) -> list[VoiceSession]:
        """The sessions this process owns (with --workers, ``len()`` counts all)."""
        return list(self._sessions.values())

    def __iter__(self) -> Iterator[VoiceSession]:
        return iter(list(self._sessions.values()))

    async def close_all(self, reason: str) -> None:
        """Ends every session (each sends ``session_end``) and admits no more."""
        self.closing = True
        sessions = list(self._sessions.values())
        if sessions:
            await asyncio.gather(*(s.close(reason) for s in sessions), return_exceptions=True)
