"""Data-channel messages (DESIGN.md section 5): parsed and encoded in one place.

Everything that crosses the `events` channel goes through ``encode`` (server to
page) or ``parse_client_message`` (page to server), so the wire format has one
definition and bad input has one answer: ``ProtocolError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

# "still_listening": the person paused after words that do not end a
# sentence, and the server waits for the rest (listening/end_of_turn.py).
Status = Literal[
    "idle", "listening", "still_listening", "processing", "generating_audio", "speaking"
]
STATUSES: tuple[str, ...] = (
    "idle",
    "listening",
    "still_listening",
    "processing",
    "generating_audio",
    "speaking",
)

CLIENT_TYPES = frozenset({"text_input", "interrupt", "end_session", "ping"})

# A data-channel message larger than this is refused before json.loads sees it.
MAX_CLIENT_MESSAGE_BYTES = 16 * 1024
MAX_TEXT_INPUT_CHARS = 2000
# Messages a page may send: the page pings every 2 s and sends a few texts a
# minute, so this is far above honest use and far below a flood.
CLIENT_MESSAGES_PER_S = 20.0
CLIENT_MESSAGE_BURST = 40


class ProtocolError(ValueError):
    """A client message we cannot act on; ``code`` goes into the error event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str
    text: str = ""


class MessageRateLimit:
    """A token bucket over one session's incoming messages (pure; the caller
    passes the clock)."""

    def __init__(
        self, per_s: float = CLIENT_MESSAGES_PER_S, burst: int = CLIENT_MESSAGE_BURST
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated: float | None = None

    def allow(self, now: float) -> bool:
        if self._updated is not None:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_s)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Validate one message from the page. Raises ``ProtocolError``."""
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_CLIENT_MESSAGE_BYTES:
            raise ProtocolError("message_too_large", "Message is too large.")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("invalid_message", "Message is not UTF-8 text.") from exc
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_CLIENT_MESSAGE_BYTES:
        raise ProtocolError("message_too_large", "Message is too large.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("invalid_message", "Message is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "Message must be a JSON object.")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"Unknown message type: {str(kind)[:40]!r}.")
    if kind != "text_input":
        return ClientMessage(type=kind)
    text = data.get("text")
    if not isinstance(text, str):
        raise ProtocolError("invalid_message", "text_input needs a string 'text'.")
    text = text.strip()
    if not text:
        raise ProtocolError("empty_text", "Type something to send.")
    if len(text) > MAX_TEXT_INPUT_CHARS:
        raise ProtocolError(
            "text_too_long", f"Text is too long (limit {MAX_TEXT_INPUT_CHARS} characters)."
        )
    return ClientMessage(type="text_input", text=text)


def encode(event_type: str, **fields: Any) -> str:
    """One server event as a JSON string."""
    return json.dumps({"type": event_type, **fields}, separators=(",", ":"), ensure_ascii=False)


def connection_established(
    session_id: str, agent_name: str, agent_id: str, providers: dict[str, str]
) -> str:
    return encode(
        "connection_established",
        session_id=session_id,
        agent=agent_name,
        agent_id=agent_id,
        providers=providers,
    )


def status_update(status: Status) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    return encode("status_update", status=status)


def transcription(text: str, turn_id: int, is_final: bool = True) -> str:
    return encode("transcription", text=text, is_final=is_final, turn_id=turn_id)


def llm_response(text: str, turn_id: int, is_final: bool) -> str:
    return encode("llm_response", text=text, is_final=is_final, turn_id=turn_id)


def llm_response_interrupted(heard: str, turn_id: int, reason: str) -> str:
    """The final reply of a turn cut short: only what the person heard of it."""
    return encode(
        "llm_response", text=heard, is_final=True, turn_id=turn_id, interrupted=True, reason=reason
    )


def turn_metrics(turn_id: int, *, interrupted: bool = False, **timings_ms: float | None) -> str:
    extra = {"interrupted": True} if interrupted else {}
    return encode(
        "turn_metrics",
        turn_id=turn_id,
        **{k: (None if v is None else round(v, 1)) for k, v in timings_ms.items()},
        **extra,
    )


def tool_call(call_id: str, name: str, arguments: Any) -> str:
    """The agent started a tool call (its arguments as the model wrote them)."""
    return encode("tool_call", call_id=call_id, name=name, arguments=arguments)


def tool_result(call_id: str, ok: bool, summary: str) -> str:
    """A tool call ended: ``summary`` is one line for people ("Booked: Tue 8 Dec, 10:00")."""
    return encode("tool_result", call_id=call_id, ok=ok, summary=summary)


def error(message: str, code: str, *, retryable: bool = False, stage: str | None = None) -> str:
    return encode("error", message=message, code=code, retryable=retryable, stage=stage)


def provider_fallback(
    stage: str, from_engine: str, to_engine: str, message: str, providers: dict[str, str]
) -> str:
    """An engine failed and the next in its chain took over (``providers``:
    the engines the session now talks through)."""
    return encode(
        "provider_fallback",
        stage=stage,
        message=message,
        providers=providers,
        **{"from": from_engine, "to": to_engine},
    )


def notice(code: str, message: str) -> str:
    """Something a person in the call should know that is not an error
    (``draining``: the server is restarting and the call has a deadline)."""
    return encode("notice", code=code, message=message)


def session_end(reason: str) -> str:
    return encode("session_end", reason=reason)


def pong() -> str:
    return encode("pong")
