"""What the turn, conversation and session unit tests share: a speaker that
plays faster than real time, a listener on its frames, and the events sent.

A turn waits until its audio has been played, so something must keep taking
frames from the speaker, as aiortc's sender does. ``Playback`` does: a task
calling ``recv()`` in a loop (on a ``FastClock`` speaker that is hundreds of
times real time; on a real-clock speaker, real time). ``play_frames`` takes a
given number of frames instead, for a test that decides what was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamError

from media_server.audio.outbound import AgentAudioTrack


class FastClock:
    """A monotonic clock the speaker's pacing sleeps skip ahead on: it never
    runs behind real time, and a 20 ms frame takes one loop turn."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    async def sleep(self, delay: float) -> None:
        self.skipped += max(0.0, delay)
        await asyncio.sleep(0)


def fast_speaker() -> AgentAudioTrack:
    clock = FastClock()
    return AgentAudioTrack(clock=clock, sleep=clock.sleep)


async def play_frames(speaker: AgentAudioTrack, frames: int) -> None:
    """Take ``frames`` frames from the speaker (silence counts as a frame)."""
    for _ in range(frames):
        await speaker.recv()


class Playback:
    """Keeps taking frames from a speaker, like the RTP sender; ``async with``.

    ``only_audio``: take a frame only when audio is queued (and otherwise
    look again in a millisecond), so a fast speaker does not spin on
    silence between replies.
    """

    def __init__(self, speaker: AgentAudioTrack, *, only_audio: bool = True) -> None:
        self.speaker = speaker
        self.only_audio = only_audio
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        speaker = self.speaker
        with contextlib.suppress(MediaStreamError):
            while True:
                if self.only_audio and not speaker.is_playing:
                    await asyncio.sleep(0.001)
                    continue
                await speaker.recv()

    def start(self) -> Playback:
        self.task = asyncio.create_task(self._run(), name="test-playback")
        return self

    async def __aenter__(self) -> Playback:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class Sent:
    """The events a turn, a conversation or a session sent, as sent and parsed."""

    def __init__(self) -> None:
        self.raw: list[str] = []

    def __call__(self, message: str) -> None:
        self.raw.append(message)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.raw]

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        """The events of this type whose fields have these values."""
        return [
            e
            for e in self.events
            if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    def names(self) -> list[str]:
        """Event types, statuses as ``status:<status>``, for order checks."""
        return [
            f"status:{e['status']}" if e["type"] == "status_update" else e["type"]
            for e in self.events
        ]

    def statuses(self) -> list[str]:
        return [e["status"] for e in self.events if e["type"] == "status_update"]

    async def wait_for(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The first event of this type with these fields, once it was sent."""
        async with asyncio.timeout(timeout):
            while not (found := self.of(kind, **fields)):  # noqa: ASYNC110 - plain state
                await asyncio.sleep(0.002)
        return found[0]


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling plain state on purpose
            await asyncio.sleep(0.002)


def turn_context(providers: Any, *, agent: Any, deadlines: Any, send: Callable[[str], None]) -> Any:
    """A TurnContext on a fast speaker and a fresh history: what a turn or a
    conversation needs from its session, for a unit test."""
    from media_server.text import ConversationHistory
    from media_server.turn import TurnContext

    return TurnContext(
        agent=agent,
        providers=providers,
        speaker=fast_speaker(),
        history=ConversationHistory(),
        deadlines=deadlines,
        send=send,
    )
