"""Twilio's wire format: the Media Streams messages read and written, and
the webhook signature against Twilio's own published vectors."""

from __future__ import annotations

import base64
import json
import warnings

import pytest

from media_server.telephony import pcm_ws, twilio
from media_server.telephony.line import Audio, Dtmf, LineError, Marked, Started, Stopped
from signaling.twilio_webhook import twilio_signature

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def _msg(**data) -> str:
    return json.dumps(data)


def test_twilios_published_signature_vectors() -> None:
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS.items()) == (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
                ("Digits", "1234"), ("Digits", "1234")]  # fmt: skip
    assert twilio_signature("12345", VECTOR_URL, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert twilio_signature("12345", VECTOR_URL + "&x=1", VECTOR_PARAMS.items()) != (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


def test_the_messages_twilio_sends_are_read() -> None:
    assert twilio.parse(_msg(event="connected", protocol="Call", version="1.0.0")) is None
    start = {
        "streamSid": SID,
        "accountSid": "AC1",
        "callSid": "CA1",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"token": "t", "agent": "sales"},
    }
    assert twilio.parse(_msg(event="start", sequenceNumber="1", start=start, streamSid=SID)) == (
        Started(SID, "CA1", {"token": "t", "agent": "sales"}, account="AC1")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = b"\x00\x10\x00\xf0" * 80
    payload = base64.b64encode(audioop.lin2ulaw(pcm, 2)).decode()
    media = {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": payload}
    event = twilio.parse(_msg(event="media", sequenceNumber="3", media=media, streamSid=SID))
    assert event == Audio(audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2))
    assert twilio.parse(_msg(event="mark", streamSid=SID, mark={"name": "0.3"})) == Marked("0.3")
    dtmf = {"track": "inbound_track", "digit": "#"}
    assert twilio.parse(_msg(event="dtmf", streamSid=SID, dtmf=dtmf)) == Dtmf("#")
    assert twilio.parse(_msg(event="stop", streamSid=SID, stop={"callSid": "CA1"})) == Stopped()


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x01",
        "not json",
        "[1, 2]",
        _msg(event="dance"),
        _msg(event="start", start={"streamSid": SID}),  # no callSid
        _msg(
            event="start",
            start={"streamSid": SID, "callSid": "CA1", "mediaFormat": {"encoding": "audio/l16"}},
        ),
        _msg(
            event="start",
            start={"streamSid": SID, "callSid": "CA1", "mediaFormat": {"sampleRate": "abc"}},
        ),
        _msg(event="start", start={"streamSid": SID, "callSid": "CA1", "mediaFormat": [1]}),
        _msg(event="media", media={"payload": "!!not base64!!"}),
        _msg(event="media", media={"payload": "A" * (twilio.MAX_PAYLOAD_CHARS + 4)}),
        _msg(event="mark", mark={}),
        _msg(event="dtmf", dtmf={"digit": "12"}),
        _msg(event="dtmf", dtmf={"digit": "x"}),
    ],
)
def test_what_breaks_the_protocol_is_a_line_error(raw) -> None:
    with pytest.raises(LineError):
        twilio.parse(raw)


def test_the_messages_we_send_are_twilios() -> None:
    assert json.loads(twilio.media(SID, b"\xff\x7f")) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(b"\xff\x7f").decode()},
    }
    assert json.loads(twilio.mark(SID, "1.2")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "1.2"},
    }
    assert json.loads(twilio.clear(SID)) == {"event": "clear", "streamSid": SID}


def test_the_generic_stream_reads_l16_and_json() -> None:
    assert pcm_ws.parse(b"\x01\x00" * 320) == Audio(b"\x01\x00" * 320)
    started = pcm_ws.parse(_msg(event="start", call_id="c1", parameters={"agent": "sales"}))
    assert started == Started("c1", "c1", {"agent": "sales"})
    assert pcm_ws.parse(_msg(event="mark", name="n")) == Marked("n")
    assert pcm_ws.parse(_msg(event="dtmf", digit="7")) == Dtmf("7")
    assert pcm_ws.parse(_msg(event="stop")) == Stopped()
    bad_ones = (
        b"\x01",
        _msg(event="dtmf", digit="77"),
        _msg(event="dtmf", digit=["7"]),
        _msg(event="start", parameters=[]),
    )
    for bad in bad_ones:
        with pytest.raises(LineError):
            pcm_ws.parse(bad)
