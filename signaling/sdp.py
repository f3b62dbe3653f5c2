"""Cheap, pure checks of an offer's SDP before aiortc parses it.

aiortc's parser validates with ``assert`` and raises assorted exceptions on
odd input (AIORTC-NOTES.md); rejecting the obviously wrong shapes here gives
the client a precise 400 and keeps garbage away from the media stack. The
checks only demand what every WebRTC offer carries (RFC 8866 line syntax,
RFC 8839 ICE credentials, RFC 8122 fingerprints, an audio m-line), so no
browser's offer is refused here; aiortc still has the last word.
"""

from __future__ import annotations

import re

MAX_SDP_CHARS = 32 * 1024
MAX_SDP_LINES = 1000
MAX_SDP_LINE_CHARS = 2048

# RFC 8866 §5: <type>=<value>, type one lower-case letter. Values are text:
# no control characters but tab (CR and LF only end lines).
_LINE = re.compile(r"[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*")
# RFC 8866 §5.14: m=<media> <port>[/<count>] <proto> <fmt> ...
_AUDIO_M_LINE = re.compile(r"m=audio [0-9]{1,5}(?:/[0-9]{1,5})? [A-Za-z0-9/_.-]+(?: \S+)+")
# RFC 5888 §4: a=mid:<identification-tag>, a non-empty token.
_MID = re.compile(r"a=mid:[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
# RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4-256, pwd 22-256.
_ICE_UFRAG = re.compile(r"a=ice-ufrag:[A-Za-z0-9+/]{4,256}")
_ICE_PWD = re.compile(r"a=ice-pwd:[A-Za-z0-9+/]{22,256}")
# RFC 8122 §5: hash-func SP fingerprint (upper-case hex pairs; lower case tolerated).
# An unknown hash function would only fail later, in the DTLS handshake.
_FINGERPRINT = re.compile(
    r"a=fingerprint:(?i:sha-1|sha-224|sha-256|sha-384|sha-512|md5|md2)"
    r" [0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){15,63}"
)


class SdpError(ValueError):
    """The offer's SDP is unusable; the message says why, for the client."""


def _require(lines: list[str], prefix: str, shape: re.Pattern[str], what: str) -> None:
    found = [line for line in lines if line.startswith(prefix)]
    if not found:
        raise SdpError(f"the offer has no {what} ({prefix.rstrip(':')})")
    for line in found:
        if not shape.fullmatch(line):
            raise SdpError(f"the offer's {what} line is malformed ({prefix.rstrip(':')})")


def check_offer_sdp(sdp: object) -> str:
    """Returns the SDP if it looks like a WebRTC audio offer, else raises ``SdpError``.

    Pure and total: any input either comes back unchanged or raises
    ``SdpError`` (never anything else), which the property tests check.
    """
    if not isinstance(sdp, str) or not sdp.strip():
        raise SdpError("'sdp' must be a non-empty string")
    if len(sdp) > MAX_SDP_CHARS:
        raise SdpError(f"SDP is larger than {MAX_SDP_CHARS} characters")
    if "\x00" in sdp:
        raise SdpError("SDP contains a NUL character")
    if any("\ud800" <= ch <= "\udfff" for ch in sdp):
        raise SdpError("SDP is not valid Unicode text")
    text = sdp.replace("\r\n", "\n").strip("\n")
    if "\r" in text:
        raise SdpError("SDP lines must end with CRLF or LF")
    lines = text.split("\n")
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"SDP has more than {MAX_SDP_LINES} lines")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_SDP_LINE_CHARS:
            raise SdpError(f"SDP line {number} is longer than {MAX_SDP_LINE_CHARS} characters")
        if not _LINE.fullmatch(line):
            raise SdpError(f"SDP line {number} is not of the form x=value")
    if lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    media = [line for line in lines if line.startswith("m=")]
    audio = [line for line in media if line.startswith("m=audio ")]
    if not audio:
        raise SdpError("the offer has no audio section (m=audio)")
    if not all(_AUDIO_M_LINE.fullmatch(line) for line in audio):
        raise SdpError("the offer's audio section line is malformed (m=audio)")
    if not all(_MID.fullmatch(line) for line in lines if line.startswith("a=mid:")):
        raise SdpError("the offer has an empty or malformed a=mid")
    _require(lines, "a=ice-ufrag:", _ICE_UFRAG, "ICE credentials")
    _require(lines, "a=ice-pwd:", _ICE_PWD, "ICE credentials")
    _require(lines, "a=fingerprint:", _FINGERPRINT, "DTLS fingerprint")
    return sdp
