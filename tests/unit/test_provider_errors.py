"""The shared HTTP/exception -> ProviderError mapping, without a network."""

from __future__ import annotations

import email.utils
import json

import httpx
import httpx2
import pytest

from media_server.providers import errors
from media_server.types import ProviderError


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, None, "invalid"),
        (401, None, "auth"),
        (403, None, "auth"),
        (404, None, "invalid"),
        (408, None, "timeout"),
        (409, None, "invalid"),
        (422, None, "invalid"),
        (402, None, "quota"),
        (429, None, "rate_limited"),
        (429, "insufficient_quota", "quota"),
        (401, "quota_exceeded", "quota"),
        (500, None, "unavailable"),
        (504, None, "unavailable"),
    ],
)
def test_kind_for_status(status: int, code: str | None, kind: str) -> None:
    assert errors.kind_for_status(status, code) == kind


def test_retry_after_forms() -> None:
    assert errors.parse_retry_after({"Retry-After": "12"}) == 12.0
    assert errors.parse_retry_after({"retry-after": "0.5"}) == 0.5
    # OpenAI's millisecond header wins when both are present.
    assert errors.parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert errors.parse_retry_after({"Retry-After": date}, now=1_000_000) == pytest.approx(30.0)
    assert errors.parse_retry_after({"Retry-After": "soon"}) is None
    assert errors.parse_retry_after({"Retry-After": "-3"}) == 0.0
    assert errors.parse_retry_after({}) is None
    assert errors.parse_retry_after(None) is None


def test_scrub_removes_given_secrets_and_key_shapes() -> None:
    text = "key abc-secret-123 and sk-proj-AbCdEf123456 and Bearer tok.en and xi-api-key: zzz"
    out = errors.scrub(text, ["abc-secret-123"])
    for secret in ("abc-secret-123", "sk-proj-AbCdEf123456", "tok.en", "zzz"):
        assert secret not in out


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "No model", "type": "x", "code": "model_not_found"}}, "No model"),
        ({"message": "inner object, as the SDK gives it", "code": None}, "inner object"),
        ({"detail": {"status": "voice_not_found", "message": "No such voice"}}, "No such voice"),
        ({"detail": [{"loc": ["body", "text"], "msg": "field required"}]}, "field required"),
        (b'{"detail": {"status": "x", "message": "bytes body"}}', "bytes body"),
        ("<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (None, ""),
    ],
)
def test_excerpt_reads_every_body_shape(body: object, expected: str) -> None:
    assert errors.excerpt(body).startswith(expected)


def test_excerpt_is_short_and_single_line() -> None:
    out = errors.excerpt({"error": {"message": "line\n" * 200}})
    assert len(out) <= errors.EXCERPT_CHARS and "\n" not in out


def test_status_error_message_has_status_code_and_no_key() -> None:
    body = {"error": {"message": "Incorrect API key provided: sk-live-123456789", "code": "x"}}
    err = errors.status_error("llm", 401, body=body, secrets=["sk-live-123456789"])
    assert err.kind == "auth" and err.status == 401 and not err.retryable
    assert "401" in str(err) and "sk-live" not in str(err)


def test_retry_after_only_for_retryable_answers() -> None:
    headers = {"Retry-After": "5"}
    assert errors.status_error("tts", 429, headers=headers).retry_after == 5.0
    assert errors.status_error("tts", 503, headers=headers).retry_after == 5.0
    assert errors.status_error("tts", 400, headers=headers).retry_after is None
    assert errors.status_error("tts", 429).retry_after is None


_REQ = httpx.Request("POST", "http://127.0.0.1/x")
_REQ2 = httpx2.Request("POST", "http://127.0.0.1/x")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("slow", request=_REQ), "timeout"),
        (httpx.ConnectTimeout("slow", request=_REQ), "timeout"),
        (httpx.ConnectError("refused", request=_REQ), "unavailable"),
        (httpx.RemoteProtocolError("peer closed", request=_REQ), "unavailable"),
        (httpx.ReadError("reset", request=_REQ), "unavailable"),
        (httpx.DecodingError("bad gzip", request=_REQ), "bad_output"),
        (httpx2.ReadTimeout("slow", request=_REQ2), "timeout"),
        (httpx2.RemoteProtocolError("peer closed", request=_REQ2), "unavailable"),
        (ConnectionResetError(104, "reset"), "unavailable"),
        (json.JSONDecodeError("x", "doc", 0), "bad_output"),
    ],
)
def test_transport_exceptions(exc: BaseException, kind: str) -> None:
    assert isinstance(exc, errors.KNOWN_ERRORS)
    err = errors.from_exception("tts", exc)
    assert (err.stage, err.kind) == ("tts", kind)
    assert err.retryable == (kind in ("timeout", "unavailable"))


def test_provider_error_passes_through() -> None:
    original = ProviderError("stt", "bad_output", "x")
    assert errors.from_exception("stt", original) is original


def test_mp3_sniffer() -> None:
    sniff = errors.Mp3Sniffer("tts")
    assert sniff.feed(b"I") == b""
    assert sniff.feed(b"D3rest") == b"ID3rest"
    assert sniff.feed(b"more") == b"more"
    frame = errors.Mp3Sniffer("tts")
    assert frame.feed(b"\xff\xfb\x90") == b"\xff\xfb\x90"
    html = errors.Mp3Sniffer("tts")
    with pytest.raises(ProviderError) as info:
        html.feed(b"<html>")
    assert info.value.kind == "bad_output"
    short = errors.Mp3Sniffer("tts")
    assert short.feed(b"\xff") == b""
    with pytest.raises(ProviderError):
        short.flush()
