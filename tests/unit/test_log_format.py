"""LOG_FORMAT=json: one object a line, the session it belongs to, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from media_server.config import ConfigError, load_settings
from media_server.log_context import SESSION_ID
from media_server.log_format import make_handler

SECRETS = ("sk-live-abcdefghijklmnop", 'turn"secret\\with-quotes')


@pytest.fixture
def json_log(request):
    stream = io.StringIO()
    logger = logging.getLogger(getattr(request, "param", "test.log_format"))
    handler = make_handler("json", SECRETS, stream)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def test_one_object_a_line_with_session_event_and_fields(json_log):
    logger, lines = json_log
    token = SESSION_ID.set("abc123")
    try:
        logger.info("session %s: closing (%s)", "abc123", "idle", extra={"fields": {"n": 2}})
    finally:
        SESSION_ID.reset(token)
    logger.warning("no session here\nsecond line of the same message")
    first, second = lines()
    assert first["time"].endswith("+00:00") and first["level"] == "INFO"
    assert first["session_id"] == "abc123"
    assert first["event"] == "session %s: closing (%s)"
    assert first["message"] == "session abc123: closing (idle)"
    assert first["fields"] == {"n": 2}
    assert second["session_id"] is None and second["level"] == "WARNING"


def test_secrets_and_tokens_are_redacted_everywhere(json_log):
    logger, lines = json_log
    try:
        raise RuntimeError(f"provider said: bad key {SECRETS[0]}")
    except RuntimeError:
        logger.exception(
            "GET /?token=%s from %s",
            "AAAA-token-BBBB",
            "127.0.0.1",
            extra={"fields": {"auth": f"Bearer {SECRETS[0]}", "turn": SECRETS[1]}},
        )
    (line,) = lines()
    text = json.dumps(line)
    for secret in (*SECRETS, "AAAA-token-BBBB"):
        assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert "token=[redacted]" in line["message"] and "[redacted]" in line["exc"]
    assert line["fields"] == {"auth": "Bearer [redacted]", "turn": "[redacted]"}


@pytest.mark.parametrize("json_log", ["aiohttp.access"], indirect=True)
def test_access_log_lines_are_http_request_events(json_log):
    logger, lines = json_log
    extra = {"first_request_line": "GET /?token=[redacted] HTTP/1.1", "response_status": 200}
    logger.info('"GET /?token=x HTTP/1.1" 200', extra=extra)
    (line,) = lines()
    assert line["event"] == "http_request" and line["fields"] == extra
    assert "token=x" not in line["message"]


def test_text_format_redacts_too():
    stream = io.StringIO()
    handler = make_handler("text", SECRETS, stream)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (SECRETS[0],), None)
    handler.handle(record)
    assert SECRETS[0] not in stream.getvalue() and "key=[redacted]" in stream.getvalue()


def test_log_format_setting():
    settings = load_settings({}, environ={"LOG_FORMAT": "JSON"}, dotenv_path=None)
    assert settings.log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings({}, environ={"LOG_FORMAT": "xml"}, dotenv_path=None)
