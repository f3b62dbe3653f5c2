"""Twilio Media Streams: the JSON messages of a bidirectional <Stream>.

Inbound (Twilio -> us): ``connected``, ``start`` (streamSid, callSid,
mediaFormat, customParameters), ``media`` (base64 μ-law 8 kHz, 20 ms),
``mark`` (a mark we sent has been played), ``dtmf`` and ``stop``.
Outbound: ``media``, ``mark`` and ``clear``, each naming the streamSid.
https://www.twilio.com/docs/voice/media-streams/websocket-messages
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from media_server.telephony import mulaw, twilio_rest
from media_server.telephony.line import (
    MAX_NAME,
    Audio,
    LineError,
    LineEvent,
    Marked,
    Started,
    Stopped,
    call_parameters,
    dtmf,
    json_object,
    parsed_by,
)

RATE = 8000
MAX_PAYLOAD_CHARS = 16 * 1024  # 20 ms is 214 characters; Twilio never sends seconds


def _obj(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise LineError(f"'{key}' must be an object")
    return value


def _text(obj: dict[str, Any], key: str, *, limit: int = MAX_NAME) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise LineError(f"'{key}' must be a short non-empty string")
    return value


def _parse(message: str | bytes) -> LineEvent | None:
    """One Twilio message; raises ``LineError`` for one that breaks the protocol."""
    if isinstance(message, bytes):
        raise LineError("Twilio sends text messages only")
    data = json_object(message)
    event = data.get("event")
    if event == "connected":
        return None
    if event == "start":
        start = _obj(data, "start")
        media_format = start.get("mediaFormat") or {}
        if (
            media_format.get("encoding", "audio/x-mulaw") != "audio/x-mulaw"
            or int(media_format.get("sampleRate", RATE)) != RATE
        ):
            raise LineError("only audio/x-mulaw at 8000 Hz is spoken here")
        raw_params = start.get("customParameters") or {}
        if not isinstance(raw_params, dict):
            raise LineError("'customParameters' must be an object")
        params = call_parameters(raw_params)
        account = start.get("accountSid", "")
        account = account if isinstance(account, str) and len(account) <= MAX_NAME else ""
        return Started(_text(start, "streamSid"), _text(start, "callSid"), params, account)
    if event == "media":
        media = _obj(data, "media")
        if media.get("track", "inbound") != "inbound":
            return None
        payload = _text(media, "payload", limit=MAX_PAYLOAD_CHARS)
        try:
            ulaw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise LineError("'payload' is not base64") from None
        return Audio(mulaw.decode(ulaw))
    if event == "mark":
        return Marked(_text(_obj(data, "mark"), "name"))
    if event == "dtmf":
        return dtmf(_text(_obj(data, "dtmf"), "digit", limit=1))
    if event == "stop":
        return Stopped()
    raise LineError(f"unknown event {str(event)[:40]!r}")


def media(stream_sid: str, ulaw: bytes) -> str:
    payload = base64.b64encode(ulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


parse = parsed_by(_parse)


class TwilioWire:
    """The agent's side of one stream, in Twilio's messages."""

    def __init__(self, send_str: Callable[[str], Awaitable[None]], stream_sid: str) -> None:
        self._send = send_str
        self._sid = stream_sid

    async def send_audio(self, frame: bytes) -> None:
        await self._send(media(self._sid, frame))

    async def send_mark(self, name: str) -> None:
        await self._send(mark(self._sid, name))

    async def send_clear(self) -> None:
        await self._send(clear(self._sid))


class TwilioCarrier:
    name = "twilio"
    rate = RATE
    encode = staticmethod(mulaw.encode)
    parse = staticmethod(parse)

    def __init__(self, api_base: str = "https://api.twilio.com", auth_token: str = "") -> None:
        self._api_base = api_base
        self._auth_token = auth_token

    def wire(self, send_str: Callable, send_bytes: Callable, stream_id: str) -> TwilioWire:
        return TwilioWire(send_str, stream_id)

    async def transfer(self, started: Started, number: str, send_str: Callable) -> None:
        """Twilio's REST API swaps the call's TwiML for a <Dial>: the stream
        stops and the caller rings ``number``."""
        await twilio_rest.dial(
            self._api_base, self._auth_token, started.account, started.call_id, number
        )
