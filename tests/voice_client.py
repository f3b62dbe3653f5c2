"""A real aiortc peer that talks to the server the way the page does.

Used by the integration tests and the benchmarks: it sends a microphone track
(paced PCM, silence between phrases), opens the `events` data channel,
gathers ICE before POSTing the offer (non-trickle), and records every event
and the energy of every frame of the agent's audio it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media_server.audio.outbound import AgentAudioTrack
from media_server.rtc.ice import rtc_configuration

# An agent frame whose RMS is above this counts as "audio heard" (s16 units);
# Opus-coded digital silence decodes to exactly 0 here, speech to hundreds.
VOICED_RMS = 100.0


@dataclass
class ReceivedAudio:
    frames: int = 0
    voiced_frames: int = 0
    first_voiced_at: float | None = None
    last_voiced_at: float | None = None
    voiced_times: list[float] = field(default_factory=list)


class VoiceClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.pc = RTCPeerConnection(configuration=rtc_configuration())
        self.mic = AgentAudioTrack()
        self.events: list[dict[str, Any]] = []
        self.event_times: list[float] = []
        self._new_event = asyncio.Condition()
        self.audio = ReceivedAudio()
        self.session_id: str | None = None
        self.record_key: str | None = None
        self._channel: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._voiced = asyncio.Event()
        # Gets the agent's audio as it arrives (48 kHz mono s16 values, and
        # its RTP timestamp): a room that echoes it back into the microphone
        # (tests/echo_room.py).
        self.on_audio: Callable[[np.ndarray, int], None] | None = None

    async def connect(
        self, agent_id: str = "receptionist", timeout: float = 15.0, token: str | None = None
    ) -> dict:
        pc = self.pc
        pc.addTrack(self.mic)
        self._channel = pc.createDataChannel("events")
        self._channel.on("message", self._on_message)
        pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.base_url}/api/offer",
                json={
                    "sdp": pc.localDescription.sdp,
                    "type": "offer",
                    "agent_id": agent_id,
                    **({"token": token} if token else {}),
                },
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"offer refused: {response.status} {body}")
        self.session_id = body["session_id"]
        self.record_key = body.get("record_key")  # the key to this call's transcript
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        return await self.wait_for("connection_established", timeout=timeout)

    # ---- events ----------------------------------------------------------

    def _on_message(self, raw: str) -> None:
        event = json.loads(raw)
        self.events.append(event)
        self.event_times.append(time.monotonic())

        async def notify() -> None:
            async with self._new_event:
                self._new_event.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def send(self, message: dict[str, Any] | str) -> None:
        self._channel.send(message if isinstance(message, str) else json.dumps(message))

    async def wait_for(
        self, event_type: str, *, timeout: float = 30.0, since: int = 0, **match: Any
    ) -> dict[str, Any]:
        """The first event of ``event_type`` (at index >= since) whose fields match."""

        def find() -> dict[str, Any] | None:
            for event in self.events[since:]:
                if event.get("type") == event_type and all(
                    event.get(k) == v for k, v in match.items()
                ):
                    return event
            return None

        async with asyncio.timeout(timeout):
            async with self._new_event:
                while (event := find()) is None:
                    await self._new_event.wait()
        return event

    def types(self, since: int = 0) -> list[str]:
        return [
            e["type"] if e["type"] != "status_update" else f"status:{e['status']}"
            for e in self.events[since:]
        ]

    # ---- audio -----------------------------------------------------------

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.get_running_loop().create_task(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                samples = frame.to_ndarray().astype(np.float32)
                if self.on_audio is not None:
                    self.on_audio(samples[0, :: len(frame.layout.channels)], frame.pts)
                rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
                self.audio.frames += 1
                if rms > VOICED_RMS:
                    now = time.monotonic()
                    self.audio.voiced_frames += 1
                    self.audio.voiced_times.append(now)
                    if self.audio.first_voiced_at is None:
                        self.audio.first_voiced_at = now
                    self.audio.last_voiced_at = now
                    self._voiced.set()

    async def first_voiced_after(self, t: float, timeout: float = 30.0) -> float:
        """When the first voiced agent frame at or after ``t`` arrived."""
        async with asyncio.timeout(timeout):
            while True:
                self._voiced.clear()
                found = next((v for v in self.audio.voiced_times if v >= t), None)
                if found is not None:
                    return found
                await self._voiced.wait()

    def voiced_frames_after(self, t: float) -> int:
        return sum(1 for v in self.audio.voiced_times if v >= t)

    async def say(self, pcm48k: bytes) -> float:
        """Plays speech into the microphone; returns when its last frame left."""
        target = self.mic.played_samples + self.mic.queued_samples + len(pcm48k) // 2
        await self.mic.write(pcm48k)
        self.mic.end_of_reply()
        duration = len(pcm48k) / 2 / AgentAudioTrack.SAMPLE_RATE
        await self.mic.wait_until_played(target, timeout=duration + 5.0)
        return time.monotonic()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.mic.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5.0)
