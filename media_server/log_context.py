"""The session a log line belongs to, without threading it through every call.

``VoiceSession`` sets it when it is created, inside the offer's task; every
task the session and aiortc start from there inherits it (asyncio copies the
context into each new task), so their log lines carry the session id.
"""

from __future__ import annotations

from contextvars import ContextVar

SESSION_ID: ContextVar[str | None] = ContextVar("session_id", default=None)
