"""OpenAI's realtime transcription over a real WebSocket, for the OpenAI fake.

``GET /v1/realtime?intent=transcription`` on the OpenAI fake's server (the
SDK derives the WebSocket URL from the same base URL) upgrades to a
WebSocket speaking the realtime event protocol of a transcription session:

- the server opens with ``session.created``; ``session.update`` (its
  ``session.type`` must be ``transcription``) is answered ``session.updated``;
- ``input_audio_buffer.append`` (base64 PCM16, 24 kHz mono as configured)
  fills the buffer; ``input_audio_buffer.commit`` answers
  ``input_audio_buffer.committed`` with a new ``item_id`` (an error
  ``input_audio_buffer_commit_empty`` under 100 ms), then, after
  ``delay_s``, the item's transcript as
  ``conversation.item.input_audio_transcription.delta`` events (one a word,
  ``delta_delay_s`` apart) and one ``...completed``;
  ``input_audio_buffer.clear`` answers ``input_audio_buffer.cleared``;
- anything it cannot take is an ``error`` event, as the real API sends.

Knobs (``RealtimeKnobs``, changeable while it runs): ``transcripts`` (one
per commit, in order; the last repeats), ``delay_s``, ``delta_delay_s``,
``fail_commit`` (the next commits get a ``server_error`` event instead of a
transcript), ``refuse_status`` (the upgrade is refused with this HTTP
status). Every connection is recorded as a ``RealtimeSession``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

RATE = 24000
MIN_COMMIT_BYTES = RATE * 2 // 10  # 100 ms


@dataclass
class RealtimeKnobs:
    transcripts: list[str] = field(default_factory=lambda: ["Hello, I would like a room."])
    delay_s: float = 0.0
    delta_delay_s: float = 0.0
    fail_commit: int = 0
    refuse_status: int | None = None


@dataclass
class RealtimeSession:
    """One WebSocket connection, as the fake saw it."""

    query: dict[str, str]
    authorization: str | None
    events: list[dict[str, Any]] = field(default_factory=list)  # from the client
    session: dict[str, Any] | None = None  # the last session.update
    appended_bytes: int = 0
    committed: list[int] = field(default_factory=list)  # bytes per commit
    closed: bool = False


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class RealtimeTranscription:
    def __init__(self, knobs: RealtimeKnobs | None = None) -> None:
        self.knobs = knobs or RealtimeKnobs()
        self.sessions: list[RealtimeSession] = []
        self._commits = 0

    def _next_transcript(self) -> str:
        texts = self.knobs.transcripts
        text = texts[min(self._commits, len(texts) - 1)] if texts else ""
        self._commits += 1
        return text

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.knobs.refuse_status is not None:
            body = {"error": {"message": "refused by the fake", "type": "server_error"}}
            return web.json_response(body, status=self.knobs.refuse_status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        rec = RealtimeSession(dict(request.query), request.headers.get("Authorization"))
        self.sessions.append(rec)
        send_lock = asyncio.Lock()

        async def send(event: dict[str, Any]) -> None:
            async with send_lock:
                if not ws.closed:
                    await ws.send_str(json.dumps({"event_id": _id("event"), **event}))

        tasks: set[asyncio.Task[None]] = set()
        buffer = bytearray()
        previous: str | None = None
        await send({"type": "session.created", "session": {"type": "transcription"}})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    await send(_error("invalid_request_error", "Invalid JSON", "invalid_json"))
                    continue
                rec.events.append(event)
                kind = event.get("type")
                if kind == "session.update":
                    session = event.get("session") or {}
                    if session.get("type") != "transcription":
                        msg_ = "session.type must be 'transcription' for this connection"
                        await send(_error("invalid_request_error", msg_, "invalid_value"))
                        continue
                    rec.session = session
                    await send({"type": "session.updated", "session": session})
                elif kind == "input_audio_buffer.append":
                    try:
                        pcm = base64.b64decode(event.get("audio", ""), validate=True)
                    except (binascii.Error, ValueError):
                        await send(
                            _error("invalid_request_error", "Invalid audio", "invalid_value")
                        )
                        continue
                    buffer += pcm
                    rec.appended_bytes += len(pcm)
                elif kind == "input_audio_buffer.clear":
                    buffer.clear()
                    await send({"type": "input_audio_buffer.cleared"})
                elif kind == "input_audio_buffer.commit":
                    if len(buffer) < MIN_COMMIT_BYTES:
                        await send(
                            _error(
                                "invalid_request_error",
                                "Error committing input audio buffer: buffer too small.",
                                "input_audio_buffer_commit_empty",
                            )
                        )
                        continue
                    rec.committed.append(len(buffer))
                    buffer.clear()
                    item = _id("item")
                    await send(
                        {
                            "type": "input_audio_buffer.committed",
                            "previous_item_id": previous,
                            "item_id": item,
                        }
                    )
                    previous = item
                    task = asyncio.create_task(self._transcribe(item, send))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    await send(
                        _error("invalid_request_error", f"Unknown event {kind!r}", "unknown_event")
                    )
        finally:
            rec.closed = True
            for task in tasks:
                task.cancel()
        return ws

    async def _transcribe(self, item: str, send: Any) -> None:
        knobs = self.knobs
        with contextlib.suppress(ConnectionError):
            await asyncio.sleep(knobs.delay_s)
            if knobs.fail_commit > 0:
                knobs.fail_commit -= 1
                await send(_error("server_error", "The server had an error.", "server_error"))
                return
            text = self._next_transcript()
            words = text.split(" ")
            for i, word in enumerate(words):
                if i:
                    await asyncio.sleep(knobs.delta_delay_s)
                delta = word if i == 0 else " " + word
                await send(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item,
                        "content_index": 0,
                        "delta": delta,
                    }
                )
            await send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item,
                    "content_index": 0,
                    "transcript": text,
                    "usage": {"type": "duration", "seconds": 1.0},
                }
            )


def _error(kind: str, message: str, code: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "code": code, "message": message}}
