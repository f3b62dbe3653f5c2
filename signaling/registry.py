"""The live sessions of one app: the only cross-session state."""

from __future__ import annotations

import asyncio
import uuid

from media_server.session import VoiceSession


class CapacityError(Exception):
    pass


class SessionRegistry:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._sessions: dict[str, VoiceSession] = {}
        self._reserved = 0

    def __len__(self) -> int:
        return len(self._sessions) + self._reserved

    def get(self, session_id: str) -> VoiceSession | None:
        return self._sessions.get(session_id)

    def reserve(self) -> str:
        """Claim a slot before the (slow) SDP work, so bursts cannot overshoot."""
        if len(self) >= self.max_sessions:
            raise CapacityError
        self._reserved += 1
        return uuid.uuid4().hex[:16]

    def release_reservation(self) -> None:
        self._reserved -= 1

    def add(self, session: VoiceSession) -> None:
        self._reserved -= 1
        self._sessions[session.session_id] = session

    def remove(self, session: VoiceSession) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]

    async def close_all(self, reason: str) -> None:
        sessions = list(self._sessions.values())
        if sessions:
            await asyncio.gather(*(s.close(reason) for s in sessions), return_exceptions=True)
