"""Property tests of the two pure parsers at the edge: SDP pre-validation and
data-channel messages. Whatever arrives, each either accepts it or raises its
own error type, never anything else, and never changes what it accepts."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from media_server import protocol
from media_server.protocol import (
    MAX_CLIENT_MESSAGE_BYTES,
    MAX_TEXT_INPUT_CHARS,
    MessageRateLimit,
    ProtocolError,
    parse_client_message,
)
from signaling.sdp import MAX_SDP_CHARS, MAX_SDP_LINES, SdpError, check_offer_sdp

ICE_CHARS = string.ascii_letters + string.digits + "+/"
HEX = "0123456789ABCDEF"

# ---- SDP -----------------------------------------------------------------


# Chromium's offer, captured from the browser the e2e tests drive (fake mic,
# loopback; its ufrag has a "/" in it, as ICE allows).
CHROMIUM_OFFER = (Path(__file__).parent / "chromium_offer.sdp").read_text().replace("\n", "\r\n")
# Firefox's shape: fingerprint and options at session level, braces in msid.
FIREFOX_OFFER = "\r\n".join(
    [
        "v=0",
        "o=mozilla...THIS_IS_SDPARTA-128.0 4227493468012151044 0 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=fingerprint:sha-256 5D:2A:" + ":".join(["0F"] * 30),
        "a=group:BUNDLE 0 1",
        "a=ice-options:trickle",
        "a=msid-semantic:WMS *",
        "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101",
        "c=IN IP4 0.0.0.0",
        "a=candidate:0 1 UDP 2122252543 127.0.0.1 53022 typ host",
        "a=sendrecv",
        "a=end-of-candidates",
        "a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level",
        "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1",
        "a=ice-pwd:a1f2e0b0a5ca3d5c8f1e6f5d3c2b1a09",
        "a=ice-ufrag:3c2f1e0d",
        "a=mid:0",
        "a=msid:{5b1c0e44-1c53-4bd4-b0b4-5b0c1a1e1f11} {a1b2c3d4-0000-4000-8000-000000000000}",
        "a=rtcp-mux",
        "a=rtpmap:109 opus/48000/2",
        "a=rtpmap:101 telephone-event/8000",
        "a=setup:actpass",
        "a=ssrc:2417316493 cname:{c1d2e3f4-0000-4000-8000-000000000000}",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=sendrecv",
        "a=ice-pwd:a1f2e0b0a5ca3d5c8f1e6f5d3c2b1a09",
        "a=ice-ufrag:3c2f1e0d",
        "a=mid:1",
        "a=setup:actpass",
        "a=sctp-port:5000",
        "a=max-message-size:1073741823",
        "",
    ]
)


@pytest.mark.parametrize("offer", [CHROMIUM_OFFER, FIREFOX_OFFER], ids=["chromium", "firefox"])
def test_browser_offers_pass(offer):
    assert check_offer_sdp(offer) == offer
    assert check_offer_sdp(offer.replace("\r\n", "\n")) == offer.replace("\r\n", "\n")


def _offer(ufrag: str, pwd: str, fingerprint: str, extra: list[str], port: int, fmts: str) -> str:
    lines = [
        "v=0",
        "o=- 4004602936 4004602936 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        f"m=audio {port} UDP/TLS/RTP/SAVPF {fmts}",
        "c=IN IP4 127.0.0.1",
        *extra,
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:actpass",
    ]
    return "\r\n".join(lines) + "\r\n"


# Attribute lines a browser may add anywhere: any lower-case type letter, any
# printable value (tabs allowed, other control characters not).
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\r\n")
    | st.just("\t"),
    max_size=80,
)
_extra_lines = st.lists(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from("abcikrtuz"), _values).filter(
        # These would be checked as required lines; keep them out of the noise.
        lambda line: not line.startswith(("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"))
    ),
    max_size=30,
)
valid_offers = st.builds(
    _offer,
    ufrag=st.text(ICE_CHARS, min_size=4, max_size=32),
    pwd=st.text(ICE_CHARS, min_size=22, max_size=64),
    fingerprint=st.lists(st.text(HEX, min_size=2, max_size=2), min_size=32, max_size=32).map(
        ":".join
    ),
    extra=_extra_lines,
    port=st.integers(0, 65535),
    fmts=st.lists(st.integers(0, 127).map(str), min_size=1, max_size=8).map(" ".join),
)


@given(st.one_of(st.text(max_size=3000), st.binary(max_size=200), st.none(), st.integers()))
@example("\ud800")
@example("v=0\r\r\n")
@example("v=0\n" * (MAX_SDP_LINES + 1))
def test_prevalidator_is_total(sdp):
    """Any input: the same string back, or SdpError with a message. Nothing else."""
    try:
        result = check_offer_sdp(sdp)
    except SdpError as exc:
        assert str(exc)
    else:
        assert result is sdp


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(valid_offers)
def test_well_formed_offers_pass_unchanged(sdp):
    assert check_offer_sdp(sdp) == sdp
    # Line endings are the sender's choice (RFC 8866 asks for CRLF; LF is common).
    lf = sdp.replace("\r\n", "\n")
    assert check_offer_sdp(lf) == lf


REQUIRED_PREFIXES = ("v=0", "m=audio", "a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(valid_offers, st.sampled_from(REQUIRED_PREFIXES))
def test_removing_a_required_line_is_refused(sdp, prefix):
    lines = [line for line in sdp.split("\r\n") if not line.startswith(prefix)]
    try:
        check_offer_sdp("\r\n".join(lines))
    except SdpError:
        return
    raise AssertionError(f"accepted an offer without {prefix}")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    valid_offers,
    st.data(),
    st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\r", "\x0b"]),
)
def test_control_characters_anywhere_are_refused(sdp, data, bad):
    at = data.draw(st.integers(0, len(sdp)))
    mutated = sdp[:at] + bad + sdp[at:]
    if bad == "\r" and mutated[at + 1 : at + 2] == "\n":
        mutated = sdp[:at] + "\r\r" + sdp[at:]  # a CR that is not part of a CRLF
    try:
        check_offer_sdp(mutated)
    except SdpError:
        return
    raise AssertionError(f"accepted {bad!r} at {at}")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(valid_offers, st.integers(min_value=1, max_value=4096))
def test_size_caps_hold_whatever_the_padding(sdp, extra_kib):
    padded = sdp + ("a=x\r\n" * (extra_kib * 1024 // 5))
    if len(padded) > MAX_SDP_CHARS or padded.count("\n") > MAX_SDP_LINES:
        try:
            check_offer_sdp(padded)
        except SdpError:
            return
        raise AssertionError("accepted an SDP over the caps")


@given(
    valid_offers,
    st.sampled_from(
        [
            ("a=ice-ufrag:", "a=ice-ufrag:ab"),  # shorter than 4 (RFC 8839)
            ("a=ice-pwd:", "a=ice-pwd:short"),  # shorter than 22
            ("a=ice-ufrag:", "a=ice-ufrag:bad ufrag!"),
            ("a=fingerprint:", "a=fingerprint:sha-256 zz:zz"),
            ("a=fingerprint:", "a=fingerprint:sha-999 " + ":".join(["AB"] * 32)),
            ("m=audio", "m=audio nine UDP/TLS/RTP/SAVPF 111"),
            ("m=audio", "m=audio 9 UDP/TLS/RTP/SAVPF"),
        ]
    ),
)
def test_malformed_required_lines_are_refused(sdp, change):
    prefix, replacement = change
    lines = [replacement if line.startswith(prefix) else line for line in sdp.split("\r\n")]
    try:
        check_offer_sdp("\r\n".join(lines))
    except SdpError:
        return
    raise AssertionError(f"accepted {replacement!r}")


# ---- data-channel messages -------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(st.one_of(st.text(max_size=500), st.binary(max_size=500)))
@example("[" * 100_000)
@example(b"\xff" * (MAX_CLIENT_MESSAGE_BYTES + 1))
@example('{"type": "text_input", "text": "\ud800"}')
def test_parser_is_total_on_arbitrary_input(raw):
    try:
        message = parse_client_message(raw)
    except ProtocolError as exc:
        assert exc.code and exc.message
    else:
        assert message.type in protocol.CLIENT_TYPES


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_parser_is_total_on_any_json_object(obj):
    try:
        message = parse_client_message(json.dumps(obj))
    except ProtocolError as exc:
        assert exc.code in {
            "invalid_message",
            "unknown_type",
            "empty_text",
            "text_too_long",
            "message_too_large",
        }
    else:
        assert message.type == obj["type"]


@given(st.sampled_from(["ping", "interrupt", "end_session"]), st.dictionaries(st.text(), st.text()))
def test_control_messages_ignore_extra_fields(kind, extra):
    extra.pop("type", None)
    message = parse_client_message(json.dumps({**extra, "type": kind}))
    assert (message.type, message.text) == (kind, "")


@given(st.text(min_size=1, max_size=MAX_TEXT_INPUT_CHARS + 50))
def test_text_input_is_stripped_and_capped(text):
    raw = json.dumps({"type": "text_input", "text": text})
    stripped = text.strip()
    try:
        message = parse_client_message(raw)
    except ProtocolError as exc:
        if not stripped:
            assert exc.code == "empty_text"
        elif len(raw.encode("utf-8", "surrogatepass")) > MAX_CLIENT_MESSAGE_BYTES:
            assert exc.code == "message_too_large"
        else:
            assert exc.code == "text_too_long" and len(stripped) > MAX_TEXT_INPUT_CHARS
    else:
        assert message.text == stripped and 0 < len(stripped) <= MAX_TEXT_INPUT_CHARS


@given(st.lists(st.floats(min_value=0, max_value=0.2), min_size=1, max_size=300))
def test_message_rate_limit_never_exceeds_burst_plus_rate(gaps):
    limit = MessageRateLimit(per_s=20, burst=40)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += limit.allow(now)
    assert allowed <= 40 + now * 20 + 1e-9
    # And honest use (one message every 50 ms or slower) is never refused.
    steady = MessageRateLimit(per_s=20, burst=40)
    assert all(steady.allow(i * 0.05) for i in range(500))
