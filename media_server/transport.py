"""What a call needs from the line it runs on, WebRTC or a phone carrier.

The session (listener, turns, providers) is the same for every call; a
``CallTransport`` is the line: it hands the caller's audio in as 16 kHz
mono s16le (``CallHooks.on_pcm``), plays the agent's voice through its
``speaker`` and carries the session's events (to the page, or nowhere on
a phone). WebRTC's is ``rtc.call.WebRtcTransport``; the carriers' are in
``telephony/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Speaker(Protocol):
    """The agent's voice, fed with 48 kHz mono s16le (``AgentAudioTrack``'s contract).

    ``played_samples`` is what the caller has heard: on WebRTC, what left for
    the browser; on a phone, what the carrier confirmed with a mark."""

    played_samples: int

    @property
    def queued_samples(self) -> int: ...
    @property
    def is_playing(self) -> bool: ...
    @property
    def held(self) -> bool: ...
    async def write(self, pcm: bytes) -> None: ...
    def end_of_piece(self) -> None: ...
    def end_of_reply(self) -> None: ...
    def hold(self) -> None: ...
    def release(self) -> None: ...
    def clear(self) -> int: ...
    def stop(self) -> None: ...
    async def wait_until_played(self, target_played_samples: int, timeout: float) -> bool: ...
    def on_first_audio(self) -> asyncio.Future[float]: ...


class EventSink(Protocol):
    def send(self, message: str) -> None: ...
    async def end(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CallHooks:
    """How a transport reaches its session."""

    on_pcm: Callable[[bytes, float], None]  # 16 kHz mono s16le, arrival time
    on_connected: Callable[[], None]  # media flows: the connect deadline is met
    on_gone: Callable[[str], None]  # the line dropped; the reason ends the session


class CallTransport(Protocol):
    kind: str  # "webrtc", "twilio", "pcm_ws": the metrics label
    speaker: Speaker
    events: EventSink

    def bind(self, hooks: CallHooks) -> None: ...
    async def close(self) -> None: ...


class NoEvents:
    """A phone line has no page to show events on: they are dropped."""

    def send(self, message: str) -> None:
        pass

    async def end(self, reason: str) -> None:
        pass
