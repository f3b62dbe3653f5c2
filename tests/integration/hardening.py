"""Helpers for the hardening tests: real offers, malformed offers, raw peers.

- ``real_offer()``: an offer exactly as our aiortc test client makes it.
- ``malformed_offers(real, n, seed)``: seeded mutations that each break the
  offer for sure (a required line gone or garbled, or a field aiortc must
  parse turned to junk), on top of random harmless noise.
- ``RawIcePeer``: an "offerer" that is only a UDP socket. It can stay silent
  (a client that never does ICE) or answer exactly one connectivity check and
  vanish (AIORTC-NOTES.md: the answering side then waits forever for a
  nomination and holds its socket).
- ``PeerConnectionCounter``: counts ``RTCPeerConnection``s the server makes,
  to prove a refused request never got one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
from aioice import stun
from aiortc import RTCPeerConnection

import media_server.rtc.peer
from media_server.audio.outbound import AgentAudioTrack
from media_server.rtc.ice import rtc_configuration

# ---- real offers -----------------------------------------------------------


async def real_offer() -> str:
    pc = RTCPeerConnection(configuration=rtc_configuration())
    mic = AgentAudioTrack()
    pc.addTrack(mic)
    pc.createDataChannel("events")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        mic.stop()
        await pc.close()


def offer_body(sdp: Any, agent_id: Any = "sales", **extra: Any) -> str:
    return json.dumps({"sdp": sdp, "type": "offer", "agent_id": agent_id, **extra})


async def post(
    base_url: str,
    data: bytes | str,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """POST /api/offer; (status, JSON body or None, headers)."""
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/api/offer", data=data, headers=sent) as response:
            try:
                body = await response.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                body = None
            return response.status, body, dict(response.headers)


class PeerConnectionCounter:
    """Wraps the peer module's ``RTCPeerConnection`` to count constructions."""

    def __init__(self, monkeypatch: Any) -> None:
        self.created = 0
        real = media_server.rtc.peer.RTCPeerConnection
        counter = self

        class Counted(real):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                counter.created += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(media_server.rtc.peer, "RTCPeerConnection", Counted)


# ---- malformed offers ---------------------------------------------------------

# Non-numeric junk for fields aiortc parses with int(): every one raises there.
# (Not "" or Arabic digits: int() takes some of those, and aiortc takes "".)
_JUNK = ("x", "1.5", "NaN", "0x10", "?", "--")
REQUIRED = ("v=0", "m=audio", "a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:")

Mutation = Callable[[list[str], random.Random], bool]


def _on_lines(pattern: str, change: Callable[[str, random.Random], str]) -> Mutation:
    """Apply ``change`` to one random line matching ``pattern``; False if none."""

    def mutate(lines: list[str], rng: random.Random) -> bool:
        hits = [i for i, line in enumerate(lines) if re.match(pattern, line)]
        if not hits:
            return False
        i = rng.choice(hits)
        lines[i] = change(lines[i], rng)
        return True

    return mutate


def _field(index: int) -> Callable[[str, random.Random], str]:
    def change(line: str, rng: random.Random) -> str:
        parts = line.split(" ")
        parts[index] = rng.choice(_JUNK)
        return " ".join(parts)

    return change


def _drop_all(prefix: str) -> Mutation:
    def mutate(lines: list[str], rng: random.Random) -> bool:
        kept = [line for line in lines if not line.startswith(prefix)]
        changed = len(kept) != len(lines)
        lines[:] = kept
        return changed

    return mutate


def _insert(make: Callable[[random.Random], str]) -> Mutation:
    def mutate(lines: list[str], rng: random.Random) -> bool:
        lines.insert(rng.randrange(1, len(lines) + 1), make(rng))
        return True

    return mutate


def _num(pattern: str) -> Callable[[str, random.Random], str]:
    return lambda line, rng: re.sub(
        pattern, lambda m: m.group(1) + rng.choice(_JUNK), line, count=1
    )


# Each one makes the offer unusable whatever else is in it. The first group
# is caught by our pre-validation, the second only by aiortc's parser (and
# turned into a 400 at the edge), which is the point of sending them.
BREAKS: dict[str, Mutation] = {
    # -- refused by signaling/sdp.py
    **{f"drop {p}": _drop_all(p) for p in REQUIRED},
    "version": _on_lines(r"v=0", lambda line, rng: rng.choice(["v=1", "v=", "v=00"])),
    "no equals": _insert(lambda rng: rng.choice(["garbage", "a", "=x", "ab=c"])),
    "upper type": _on_lines(r"a=", lambda line, rng: "A" + line[1:]),
    "control char": _on_lines(
        r"a=", lambda line, rng: line[:3] + rng.choice("\x01\x1b\x7f\x0b\x0c") + line[3:]
    ),
    "short ufrag": _on_lines(r"a=ice-ufrag:", lambda line, rng: "a=ice-ufrag:ab"),
    "short pwd": _on_lines(r"a=ice-pwd:", lambda line, rng: "a=ice-pwd:" + "p" * 21),
    "bad fingerprint": _on_lines(
        r"a=fingerprint:",
        lambda line, rng: rng.choice(
            ["a=fingerprint:sha-256 ZZ:ZZ", "a=fingerprint:sha-999 " + line.split(" ", 1)[1]]
        ),
    ),
    "audio port": _on_lines(r"m=audio", _field(1)),
    "audio to video": _on_lines(r"m=audio", lambda line, rng: "m=video" + line[7:]),
    # -- refused by aiortc (AssertionError, ValueError, KeyError, AttributeError)
    "audio format": _on_lines(r"m=audio", lambda line, rng: " ".join([*line.split()[:3], "x"])),
    "c= line": _on_lines(r"c=IN", lambda line, rng: "c=IN IP4"),
    "candidate port": _on_lines(r"a=candidate:", _field(5)),
    "candidate priority": _on_lines(r"a=candidate:", _field(3)),
    "candidate cut": _on_lines(
        r"a=candidate:", lambda line, rng: " ".join(line.split(" ")[: rng.randrange(1, 6)])
    ),
    "extmap id": _on_lines(r"a=extmap:", _num(r"(a=extmap:)\d+")),
    "rtpmap type": _on_lines(r"a=rtpmap:", _num(r"(a=rtpmap:)\d+")),
    "rtpmap rate": _on_lines(r"a=rtpmap:", _num(r"(a=rtpmap:\d+ [^/]+/)\d+")),
    "ssrc": _on_lines(r"a=ssrc:", _num(r"(a=ssrc:)\d+")),
    "rtcp": _on_lines(r"a=rtcp:", lambda line, rng: "a=rtcp:" + rng.choice(_JUNK)),
    "sctp port": _on_lines(r"a=sctp-port:", lambda line, rng: "a=sctp-port:" + rng.choice(_JUNK)),
    "setup": _on_lines(r"a=setup:", lambda line, rng: "a=setup:" + rng.choice(["bogus", "on"])),
    "empty mid": _on_lines(r"a=mid:", lambda line, rng: "a=mid:"),
}


def _noise(lines: list[str], rng: random.Random) -> None:
    """Harmless-looking shuffles: duplicate, swap or drop non-required lines."""
    for _ in range(rng.randrange(0, 3)):
        op = rng.choice(("dup", "swap", "drop"))
        i, j = rng.randrange(1, len(lines)), rng.randrange(1, len(lines))
        if op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif not lines[i].startswith(REQUIRED):
            del lines[i]


def malformed_offers(real: str, n: int, seed: int = 20240611) -> Iterator[tuple[str, str]]:
    """``n`` (description, sdp) pairs, the same ones for the same seed."""
    rng = random.Random(seed)
    base = real.strip().split("\r\n")
    names = sorted(BREAKS)
    for k in range(n):
        lines = list(base)
        _noise(lines, rng)
        name = names[k % len(names)]  # every kind, round robin
        while not BREAKS[name](lines, rng):
            name = rng.choice(names)
        yield name, "\r\n".join(lines) + "\r\n"


# ---- a peer that is only a UDP socket ---------------------------------------------

MINIMAL_AUDIO_OFFER = [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "m=audio {port} UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 127.0.0.1",
    "a=mid:0",
    "a=sendrecv",
    "a=rtcp-mux",
    "a=rtpmap:96 opus/48000/2",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host",
    "a=end-of-candidates",
    "a=ice-ufrag:{ufrag}",
    "a=ice-pwd:{pwd}",
    "a=fingerprint:sha-256 {fingerprint}",
    "a=setup:actpass",
]


class RawIcePeer(asyncio.DatagramProtocol):
    """Offers one host candidate on a bare UDP socket. ``answer_checks``:
    how many STUN connectivity checks it answers (0: none) before it goes
    silent and closes its socket, like a tab killed mid-ICE."""

    def __init__(self, answer_checks: int = 0) -> None:
        self.answer_checks = answer_checks
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(16)
        self.checks_seen = 0
        self.checks_answered = 0
        self.answered = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> RawIcePeer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def offer_sdp(self) -> str:
        fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
        lines = [
            line.format(port=self.port, ufrag=self.ufrag, pwd=self.pwd, fingerprint=fingerprint)
            for line in MINIMAL_AUDIO_OFFER
        ]
        return "\r\n".join(lines) + "\r\n"

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if message.message_method != stun.Method.BINDING:
            return
        if message.message_class != stun.Class.REQUEST:
            return
        self.checks_seen += 1
        if self.checks_answered >= self.answer_checks or self._transport is None:
            return
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(self.pwd.encode("utf-8"))
        self._transport.sendto(bytes(response), addr)
        self.checks_answered += 1
        if self.checks_answered >= self.answer_checks:
            self.answered.set()
            self.close()  # and vanish: no nomination will ever come

    def close(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            with contextlib.suppress(Exception):
                transport.close()
