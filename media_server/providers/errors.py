"""The one mapping from HTTP trouble to ``ProviderError``, shared by every cloud provider.

Cloud providers fail through three client stacks: the ``openai`` SDK (which
wraps its own ``httpx2`` fork), ``httpx2`` itself (the SDK lets transport errors
escape while a streamed body is read) and ``httpx`` (ElevenLabs). Whatever the
stack, the turn policy needs one answer: which ``ErrorKind``, retryable or
not, the HTTP status and how long the server asked us to wait.

Messages are built here from the status and a short excerpt of the error body,
never from the client's own exception text: the SDK puts whole response bodies
in its messages, and OpenAI's 401 body quotes (part of) the key that was sent.
Providers raise the result ``from None`` so the original exception, and its
message, does not end up in a logged traceback either.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Iterable, Mapping

import anyio
import httpx
import openai

from media_server.types import RETRYABLE_KINDS, ErrorKind, ProviderError, Stage

try:  # the openai SDK's transport; present whenever the SDK is, but not ours to pin
    import httpx2
except ImportError:  # pragma: no cover - older SDKs use plain httpx
    httpx2 = None  # type: ignore[assignment]

# Error codes inside a body that mean "out of credit" whatever the status says:
# OpenAI answers 429 insufficient_quota, ElevenLabs 401 quota_exceeded.
_QUOTA_CODES = frozenset({"insufficient_quota", "quota_exceeded", "billing_hard_limit_reached"})

# Things that look like credentials, scrubbed from any text we pass on even if
# the exact key is unknown (a proxy or another key in the body).
_CREDENTIAL_RE = re.compile(
    r"(sk-[A-Za-z0-9_\-*.]{6,}|(?i:bearer)\s+\S+|(?i:xi-api-key)\s*[:=]\s*\S+)"
)

EXCERPT_CHARS = 160


def _tuple(*classes: type[BaseException] | None) -> tuple[type[BaseException], ...]:
    return tuple(c for c in classes if c is not None)


_TIMEOUTS = _tuple(httpx.TimeoutException, getattr(httpx2, "TimeoutException", None), TimeoutError)
_STATUS_ERRORS = _tuple(httpx.HTTPStatusError, getattr(httpx2, "HTTPStatusError", None))
_DECODING_ERRORS = _tuple(httpx.DecodingError, getattr(httpx2, "DecodingError", None))
_TRANSPORT_ERRORS = _tuple(
    httpx.TransportError,
    httpx.StreamError,
    getattr(httpx2, "TransportError", None),
    getattr(httpx2, "StreamError", None),
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    ConnectionError,  # ConnectionResetError, BrokenPipeError, ... from a raw socket
)

#: What a provider should catch and hand to ``from_exception``; anything else is
#: a bug and propagates with its traceback.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (
    ProviderError,
    openai.OpenAIError,
    httpx.HTTPError,
    httpx.StreamError,
    *_tuple(getattr(httpx2, "HTTPError", None), getattr(httpx2, "StreamError", None)),
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    OSError,
    json.JSONDecodeError,
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove every given secret (and anything shaped like a key) from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _CREDENTIAL_RE.sub("***", text)


def _body_detail(body: object) -> tuple[str, str | None]:
    """(message, code) from an OpenAI, ElevenLabs or FastAPI style error body."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body, None
    if not isinstance(body, Mapping):
        return ("" if body is None else str(body)), None
    # OpenAI: {"error": {"message", "type", "param", "code"}}; the SDK hands us
    # the inner object as exc.body, so accept both levels.
    inner = body.get("error", body)
    # ElevenLabs: {"detail": {"status", "message"}}; FastAPI 422: {"detail": [...]}
    inner = inner.get("detail", inner) if isinstance(inner, Mapping) else inner
    if isinstance(inner, Mapping):
        code = inner.get("code") or inner.get("status") or inner.get("type")
        message = inner.get("message") or inner.get("msg") or ""
        return str(message), (str(code) if code else None)
    if isinstance(inner, list) and inner and isinstance(inner[0], Mapping):
        return str(inner[0].get("msg", "")), None
    return str(inner), None


def excerpt(body: object, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line, key-free summary of an error body for logs."""
    message, _ = _body_detail(body)
    message = " ".join(scrub(message, secrets).split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def kind_for_status(status: int, code: str | None = None) -> ErrorKind:
    if code in _QUOTA_CODES or status == 402:
        return "quota"
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "unavailable"
    # 400/404/422 and any other 4xx: the request itself is wrong.
    return "invalid"


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (RFC 9110 §10.2.3:
    delay-seconds or an HTTP-date)."""
    if not headers:
        return None
    # Header lookups below are case-insensitive on httpx/aiohttp headers; lower
    # the keys for plain dicts.
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def status_error(
    stage: Stage,
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    body: object = None,
    secrets: Iterable[str] = (),
) -> ProviderError:
    secrets = tuple(secrets)
    _, code = _body_detail(body)
    kind = kind_for_status(status, code)
    detail = excerpt(body, secrets)
    code_part = f" [{scrub(code, secrets)}]" if code else ""
    return ProviderError(
        stage,
        kind,
        f"{stage} {kind}: HTTP {status}{code_part}" + (f": {detail}" if detail else ""),
        status=status,
        # RFC 9110 allows Retry-After on 503 as well as 429; pass it on for any
        # retryable answer and let turn.py decide whether to wait that long.
        retry_after=parse_retry_after(headers) if kind in RETRYABLE_KINDS else None,
    )


def bad_output(stage: Stage, why: str, *, status: int | None = None) -> ProviderError:
    return ProviderError(stage, "bad_output", f"{stage} bad_output: {why}", status=status)


def from_exception(
    stage: Stage, exc: BaseException, *, secrets: Iterable[str] = ()
) -> ProviderError:
    """Map any exception in ``KNOWN_ERRORS`` to a ``ProviderError``."""
    secrets = tuple(secrets)
    name = type(exc).__name__
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return status_error(
            stage, exc.status_code, headers=exc.response.headers, body=exc.body, secrets=secrets
        )
    if isinstance(exc, _STATUS_ERRORS):
        response = exc.response  # type: ignore[attr-defined]
        return status_error(stage, response.status_code, headers=response.headers, secrets=secrets)
    # APITimeoutError subclasses APIConnectionError, so it goes first.
    if isinstance(exc, (openai.APITimeoutError, *_TIMEOUTS)):
        return ProviderError(stage, "timeout", f"{stage} timeout: {name}")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        why = f"{name} ({type(cause).__name__})" if cause is not None else name
        return ProviderError(stage, "unavailable", f"{stage} unavailable: {why}")
    if isinstance(
        exc, (openai.APIResponseValidationError, json.JSONDecodeError, *_DECODING_ERRORS)
    ):
        return bad_output(stage, name)
    if isinstance(exc, openai.APIError):
        # An error event inside an SSE stream: the server failed mid-answer.
        return ProviderError(
            stage, "unavailable", f"{stage} unavailable: stream error: {excerpt(exc.body, secrets)}"
        )
    if isinstance(exc, (*_TRANSPORT_ERRORS, OSError)):
        return ProviderError(stage, "unavailable", f"{stage} unavailable: {name}")
    # Any other OpenAIError (e.g. a missing-credentials error) is a setup problem.
    return ProviderError(stage, "invalid", f"{stage} invalid: {name}", retryable=False)


# -- output checks: "empty or non-audio output" is bad_output too ------------------


def is_audio_content_type(content_type: str | None) -> bool:
    """audio/*, or a generic binary type some servers use for raw PCM."""
    if not content_type:
        return True  # nothing claimed: let the bytes speak
    ctype = content_type.split(";")[0].strip().lower()
    return ctype.startswith("audio/") or ctype == "application/octet-stream"


def looks_like_mp3(head: bytes) -> bool:
    """An ID3v2 tag or an MPEG audio frame sync (11 set bits) at the start."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


class Mp3Sniffer:
    """Checks the first bytes of a streamed body really are MP3.

    An error page served as 200 audio/mpeg (a proxy, a captive portal) would
    otherwise reach the decoder; the check costs nothing but holding back the
    first 3 bytes until they have arrived.
    """

    HEAD = 3

    def __init__(self, stage: Stage) -> None:
        self._stage: Stage = stage
        self._head = b""
        self._checked = False

    def feed(self, data: bytes) -> bytes:
        """The bytes to pass on now (possibly none while the head is incomplete)."""
        if self._checked:
            return data
        self._head += data
        if len(self._head) < self.HEAD:
            return b""
        return self._check()

    def flush(self) -> bytes:
        """At the end of the body: whatever was held back (checked)."""
        if self._checked or not self._head:
            return b""
        return self._check()

    def _check(self) -> bytes:
        self._checked = True
        if not looks_like_mp3(self._head):
            raise bad_output(self._stage, "body does not start like MP3")
        head, self._head = self._head, b""
        return head
