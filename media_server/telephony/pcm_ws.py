"""A generic phone-gateway WebSocket: L16 (s16le) 16 kHz mono audio.

For a SIP gateway or carrier bridge of one's own (README "Phone calls"):
audio both ways is binary messages of raw 16 kHz s16le PCM (20 ms = 640
bytes is best; any even length is taken); control is JSON text:

- in: ``{"event": "start", "call_id": "...", "parameters": {...}}`` first,
  then ``{"event": "mark", "name": "..."}`` (a mark we sent was played),
  ``{"event": "dtmf", "digit": "3"}``, ``{"event": "stop"}``.
- out: ``{"event": "mark", "name": "..."}`` after each sentence,
  ``{"event": "clear"}`` on barge-in (drop what you buffered) and
  ``{"event": "transfer", "to": "+15550100"}`` when the agent transfers the
  call (the gateway dials on; we close the stream after it). The agent
  hanging up closes the WebSocket.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from media_server.telephony.line import (
    MAX_NAME,
    Audio,
    LineError,
    LineEvent,
    Marked,
    Started,
    Stopped,
    TransferFailed,
    call_parameters,
    dtmf,
    json_object,
    parsed_by,
)

RATE = 16000
MAX_AUDIO_BYTES = 64 * 1024


def _identity(pcm: bytes) -> bytes:
    return pcm


def _parse(message: str | bytes) -> LineEvent | None:
    if isinstance(message, bytes):
        if len(message) % 2 or len(message) > MAX_AUDIO_BYTES:
            raise LineError("audio must be whole 16-bit samples, at most 64 KiB a message")
        return Audio(message)
    data = json_object(message)
    event = data.get("event")
    if event == "start":
        call_id = data.get("call_id", "")
        params = data.get("parameters", {})
        if not isinstance(call_id, str) or len(call_id) > MAX_NAME or not isinstance(params, dict):
            raise LineError("'call_id' must be a string and 'parameters' an object")
        return Started(call_id or "pcm", call_id, call_parameters(params))
    if event == "mark":
        name = data.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise LineError("'name' must be a short string")
        return Marked(name)
    if event == "dtmf":
        return dtmf(data.get("digit"))
    if event == "stop":
        return Stopped()
    raise LineError(f"unknown event {str(event)[:40]!r}")


parse = parsed_by(_parse)


class PcmWire:
    def __init__(
        self,
        send_str: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._send_str = send_str
        self._send_bytes = send_bytes

    async def send_audio(self, frame: bytes) -> None:
        await self._send_bytes(frame)

    async def send_mark(self, name: str) -> None:
        await self._send_str(json.dumps({"event": "mark", "name": name}))

    async def send_clear(self) -> None:
        await self._send_str(json.dumps({"event": "clear"}))


class PcmWsCarrier:
    name = "pcm_ws"
    rate = RATE
    encode = staticmethod(_identity)
    parse = staticmethod(parse)

    def wire(self, send_str: Callable, send_bytes: Callable, stream_id: str) -> PcmWire:
        return PcmWire(send_str, send_bytes)

    async def transfer(self, started: Started, number: str, send_str: Callable) -> None:
        try:
            await send_str(json.dumps({"event": "transfer", "to": number}))
        except (ConnectionError, RuntimeError) as exc:  # the stream closed under us
            raise TransferFailed("the line is gone") from exc
