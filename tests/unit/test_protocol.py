import json

import pytest

from media_server import protocol
from media_server.protocol import ProtocolError, parse_client_message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "ping"}', ("ping", "")),
        ('{"type": "end_session"}', ("end_session", "")),
        ('{"type": "interrupt"}', ("interrupt", "")),
        ('{"type": "text_input", "text": "  hi there "}', ("text_input", "hi there")),
        (b'{"type": "ping"}', ("ping", "")),
    ],
)
def test_valid_messages(raw, expected):
    message = parse_client_message(raw)
    assert (message.type, message.text) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("nope", "invalid_message"),
        ("[]", "invalid_message"),
        (b"\xff\xfe", "invalid_message"),
        ('{"type": "launch"}', "unknown_type"),
        ('{"type": 5}', "unknown_type"),
        ('{"text": "x"}', "unknown_type"),
        ('{"type": "text_input"}', "invalid_message"),
        ('{"type": "text_input", "text": 3}', "invalid_message"),
        ('{"type": "text_input", "text": "   "}', "empty_text"),
        (json.dumps({"type": "text_input", "text": "a" * 2001}), "text_too_long"),
        ("x" * 20000, "message_too_large"),
        ("[" * 5000 + "]" * 5000, "invalid_message"),
    ],
)
def test_invalid_messages_raise_protocol_error(raw, code):
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code == code and info.value.message


def test_encoders_produce_contract_shapes():
    assert json.loads(protocol.status_update("speaking")) == {
        "type": "status_update",
        "status": "speaking",
    }
    with pytest.raises(ValueError):
        protocol.status_update("dancing")  # type: ignore[arg-type]
    assert json.loads(protocol.connection_established("s1", "Sales Agent", "sales", {"stt": "a"}))[
        "providers"
    ] == {"stt": "a"}
    assert json.loads(protocol.transcription("hi", 3)) == {
        "type": "transcription",
        "text": "hi",
        "is_final": True,
        "turn_id": 3,
    }
    metrics = json.loads(protocol.turn_metrics(2, transcript_ms=12.345, first_audio_ms=None))
    assert metrics == {
        "type": "turn_metrics",
        "turn_id": 2,
        "transcript_ms": 12.3,
        "first_audio_ms": None,
    }
    cut = json.loads(protocol.turn_metrics(4, interrupted=True, first_audio_ms=310.04))
    assert cut == {
        "type": "turn_metrics",
        "turn_id": 4,
        "first_audio_ms": 310.0,
        "interrupted": True,
    }
    error = json.loads(protocol.error("Try again", "stt_timeout", retryable=True, stage="stt"))
    assert error == {
        "type": "error",
        "message": "Try again",
        "code": "stt_timeout",
        "retryable": True,
        "stage": "stt",
    }
    assert json.loads(protocol.session_end("idle_timeout"))["reason"] == "idle_timeout"
