"""Cheap, pure checks of an offer's SDP before aiortc parses it.

aiortc's parser validates with ``assert`` and raises assorted exceptions on
odd input (AIORTC-NOTES.md); rejecting the obviously wrong shapes here gives
the client a precise 400 and keeps garbage away from the media stack.
"""

from __future__ import annotations

MAX_SDP_CHARS = 32 * 1024
MAX_SDP_LINES = 1000
MAX_SDP_LINE_CHARS = 2048


class SdpError(ValueError):
    """The offer's SDP is unusable; the message says why, for the client."""


def check_offer_sdp(sdp: object) -> str:
    """Returns the SDP if it looks like a WebRTC audio offer, else raises."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise SdpError("'sdp' must be a non-empty string")
    if len(sdp) > MAX_SDP_CHARS:
        raise SdpError(f"SDP is larger than {MAX_SDP_CHARS} characters")
    if "\x00" in sdp:
        raise SdpError("SDP contains a NUL character")
    lines = sdp.replace("\r\n", "\n").strip().split("\n")
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"SDP has more than {MAX_SDP_LINES} lines")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_SDP_LINE_CHARS:
            raise SdpError(f"SDP line {number} is longer than {MAX_SDP_LINE_CHARS} characters")
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"SDP line {number} is not of the form x=value")
    if lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    media = [line for line in lines if line.startswith("m=")]
    if not any(line.startswith("m=audio ") for line in media):
        raise SdpError("the offer has no audio section (m=audio)")
    if not any(line.startswith("a=ice-ufrag:") for line in lines):
        raise SdpError("the offer has no ICE credentials (a=ice-ufrag)")
    if not any(line.startswith("a=ice-pwd:") for line in lines):
        raise SdpError("the offer has no ICE credentials (a=ice-pwd)")
    if not any(line.startswith("a=fingerprint:") for line in lines):
        raise SdpError("the offer has no DTLS fingerprint (a=fingerprint)")
    return sdp
