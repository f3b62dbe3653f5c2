"""A fake phone carrier: Twilio's Media Streams (or the generic L16 stream)
spoken over a real WebSocket, the way the carrier would.

Like Twilio, it sends ``connected`` and ``start`` (with the <Parameter>s of
the TwiML our webhook answered), then one ``media`` message every 20 ms for
the whole call (silence when the caller says nothing), μ-law made with the
standard codec (``audioop``). It plays what the server sends on a playout
clock: a ``mark`` is echoed once the audio sent before it has played, and a
``clear`` drops the buffered audio and echoes the pending marks at once (as
Twilio documents). Everything received is kept with its arrival time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import warnings
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from media_server.audio.pcm import PcmResampler
from tests.voice_client import VOICED_RMS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # the standard codec (CPython <= 3.12)
    except ImportError:  # pragma: no cover - 3.13: our own, tested bit-exact against it
        audioop = None

FRAME_S = 0.02


def lin2ulaw(pcm: bytes) -> bytes:
    if audioop is not None:
        return audioop.lin2ulaw(pcm, 2)
    from media_server.telephony import mulaw

    return mulaw.encode(pcm)


def ulaw2lin(data: bytes) -> bytes:
    if audioop is not None:
        return audioop.ulaw2lin(data, 2)
    from media_server.telephony import mulaw

    return mulaw.decode(data)


def stream_of_twiml(twiml: str) -> tuple[str, dict[str, str]]:
    """The <Stream url> and its <Parameter>s, as Twilio reads our TwiML."""
    url = re.search(r'<Stream url="([^"]+)"', twiml)
    assert url, twiml
    params = dict(re.findall(r'<Parameter name="([^"]*)" value="([^"]*)"/>', twiml))
    return url.group(1).replace("&amp;", "&"), params


@dataclass
class Heard:
    at: float
    pcm: bytes  # s16le at the line's rate

    @property
    def voiced(self) -> bool:
        samples = np.frombuffer(self.pcm, dtype="<i2").astype(np.float64)
        return bool(samples.size) and float(np.sqrt(np.mean(samples**2))) > VOICED_RMS


@dataclass
class PhoneClient:
    """``kind``: "twilio" (μ-law 8 kHz JSON) or "pcm" (L16 16 kHz binary)."""

    kind: str = "twilio"
    audio: list[Heard] = field(default_factory=list)
    marks_echoed: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    others: list[tuple[float, dict]] = field(default_factory=list)  # e.g. a transfer
    close_code: int | None = None

    def __post_init__(self) -> None:
        self.rate = 8000 if self.kind == "twilio" else 16000
        self._frame_bytes = int(self.rate * FRAME_S) * 2
        self._to_send: list[bytes] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._play_end = 0.0
        self._pending_marks: dict[str, asyncio.TimerHandle] = {}
        self.closed = asyncio.Event()
        self.speech_sent = asyncio.Event()  # the last queued speech frame went out
        self.speech_sent_at = 0.0
        self.sid = "MZ" + "0" * 30

    # -- the call -----------------------------------------------------------

    async def connect(self, url: str, parameters: dict[str, str]) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=2))
        if self.kind == "twilio":
            await self._send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            start = {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.sid,
                "callSid": "CA" + "1" * 32,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": parameters,
            }
            await self._send_json(
                {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": self.sid}
            )
        else:
            await self._send_json({"event": "start", "call_id": "call-1", "parameters": parameters})
        self._tasks = [
            asyncio.create_task(self._talk(), name="phone-talk"),
            asyncio.create_task(self._listen(), name="phone-listen"),
        ]

    def say(self, pcm_48k: bytes) -> float:
        """Queue speech (48 kHz s16le); returns the seconds it lasts."""
        resampler = PcmResampler(48000, 1, self.rate)
        pcm = resampler.convert(pcm_48k) + resampler.flush()
        fb = self._frame_bytes
        pcm = pcm.ljust(len(pcm) + (-len(pcm)) % fb, b"\x00")
        self._to_send.extend(pcm[i : i + fb] for i in range(0, len(pcm), fb))
        self.speech_sent.clear()
        return len(pcm) / 2 / self.rate

    async def press(self, digit: str) -> None:
        if self.kind == "twilio":
            await self._send_json(
                {
                    "event": "dtmf",
                    "streamSid": self.sid,
                    "dtmf": {"track": "inbound_track", "digit": digit},
                }
            )
        else:
            await self._send_json({"event": "dtmf", "digit": digit})

    async def hang_up(self) -> None:
        stop = {"event": "stop", "streamSid": self.sid, "stop": {"callSid": "CA" + "1" * 32}}
        with contextlib.suppress(Exception):
            await self._send_json(stop if self.kind == "twilio" else {"event": "stop"})
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    # -- what was heard ------------------------------------------------------

    def voiced_since(self, since: float) -> list[Heard]:
        return [h for h in self.audio if h.at >= since and h.voiced]

    # -- the wire -------------------------------------------------------------

    async def _send_json(self, message: dict) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def _talk(self) -> None:
        """One 20 ms frame every 20 ms on an absolute clock, as a carrier does."""
        start = time.monotonic()
        n = 0
        silence = bytes(self._frame_bytes)
        while True:
            speaking = bool(self._to_send)
            frame = self._to_send.pop(0) if speaking else silence
            if self.kind == "twilio":
                payload = base64.b64encode(lin2ulaw(frame)).decode("ascii")
                await self._send_json(
                    {
                        "event": "media",
                        "streamSid": self.sid,
                        "media": {
                            "track": "inbound",
                            "chunk": str(n + 1),
                            "timestamp": str(n * 20),
                            "payload": payload,
                        },
                    }
                )
            else:
                await self._ws.send_bytes(frame)  # type: ignore[union-attr]
            if speaking and not self._to_send:
                self.speech_sent_at = time.monotonic()
                self.speech_sent.set()
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))

    async def _listen(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                now = time.monotonic()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self._play(now, msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(now, json.loads(msg.data))
        finally:
            self.close_code = self._ws.close_code
            self.closed.set()

    def _on_text(self, now: float, data: dict) -> None:
        event = data.get("event")
        if self.kind == "twilio":
            assert data.get("streamSid") == self.sid, data
        if event == "media":
            self._play(now, ulaw2lin(base64.b64decode(data["media"]["payload"])))
        elif event == "mark":
            name = data["mark"]["name"] if self.kind == "twilio" else data["name"]
            delay = max(0.0, self._play_end - now)
            loop = asyncio.get_running_loop()
            self._pending_marks[name] = loop.call_later(delay, self._echo_mark, name)
        elif event == "clear":
            self.clears.append(now)
            self._play_end = now
            for name, handle in list(self._pending_marks.items()):
                handle.cancel()
                self._echo_mark(name)
        else:
            self.others.append((now, data))

    def _play(self, now: float, pcm: bytes) -> None:
        self.audio.append(Heard(now, pcm))
        self._play_end = max(self._play_end, now) + len(pcm) / 2 / self.rate

    def _echo_mark(self, name: str) -> None:
        self._pending_marks.pop(name, None)
        self.marks_echoed.append((time.monotonic(), name))
        if self.kind == "twilio":
            message = {"event": "mark", "streamSid": self.sid, "mark": {"name": name}}
        else:
            message = {"event": "mark", "name": name}
        if self._ws is not None and not self._ws.closed:
            task = asyncio.ensure_future(self._ws.send_str(json.dumps(message)))
            self._tasks.append(task)
