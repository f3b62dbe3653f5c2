"""What every carrier's stream says, once its wire format is read.

A carrier module (twilio.py, pcm_ws.py) turns each WebSocket message into
one of these (or raises ``LineError`` for a message it cannot use), and
sends the agent's audio, marks and clears in its own format (``LineWire``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from media_server.telephony.speaker import LineWire


class LineError(ValueError):
    """A message the carrier's protocol does not allow; str() is safe to log."""


DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_NAME = 128  # ids, names and parameter keys a carrier sends


def json_object(message: str) -> dict[str, Any]:
    """A text message as the JSON object every carrier sends."""
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        raise LineError("not JSON") from None
    if not isinstance(data, dict):
        raise LineError("not a JSON object")
    return data


def call_parameters(raw: dict[Any, Any]) -> dict[str, str]:
    """The call's custom parameters, capped: 32 of them, short keys and values."""
    return {str(k)[:MAX_NAME]: str(v)[:1024] for k, v in list(raw.items())[:32]}


def dtmf(digit: Any) -> Dtmf:
    if digit not in DTMF_DIGITS:
        raise LineError("'digit' must be one of 0-9 * # A-D")
    return Dtmf(digit)


def parsed_by(
    parse: Callable[[str | bytes], LineEvent | None],
) -> Callable[[str | bytes], LineEvent | None]:
    """A carrier's message parser whose every malformed input (odd shapes,
    odd types) is a ``LineError``, never another exception."""

    def checked(message: str | bytes) -> LineEvent | None:
        """One message; raises ``LineError`` for anything the protocol does not allow."""
        try:
            return parse(message)
        except LineError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise LineError(f"malformed message ({type(exc).__name__})") from None

    return checked


class TransferFailed(Exception):
    """The carrier did not take the transfer; str() is said to the model."""


@dataclass(frozen=True, slots=True)
class Started:
    stream_id: str
    call_id: str
    parameters: dict[str, str] = field(default_factory=dict)
    account: str = ""  # the carrier's account (Twilio's AccountSid), for its REST API


@dataclass(frozen=True, slots=True)
class Audio:
    pcm: bytes  # s16le mono at the carrier's rate


@dataclass(frozen=True, slots=True)
class Marked:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Stopped:
    pass


LineEvent = Started | Audio | Marked | Dtmf | Stopped


class Carrier(Protocol):
    name: str  # the metrics label: "twilio", "pcm_ws"
    rate: int  # both directions, Hz
    encode: Callable[[bytes], bytes]  # s16le at ``rate`` -> the wire's audio bytes

    def parse(self, message: str | bytes) -> LineEvent | None:
        """One message; None for one that carries nothing for us ("connected")."""
        ...

    def wire(self, send_str: Callable, send_bytes: Callable, stream_id: str) -> LineWire: ...

    async def transfer(self, started: Started, number: str, send_str: Callable) -> None:
        """Hand the call to ``number``; raises ``TransferFailed``."""
        ...
