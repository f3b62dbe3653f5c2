"""The agent's voice on a phone line: 20 ms frames paced in real time, and
marks that say what the caller has heard.

It takes the same 48 kHz PCM as the WebRTC track (``transport.Speaker``),
resamples it to the carrier's rate and encodes it (μ-law, or L16 as is),
and sends one frame per 20 ms on an absolute clock, a few frames ahead so
the carrier's buffer rides over network jitter. After each sentence and at
the end of a reply it sends a mark; ``played_samples`` moves only when the
carrier echoes one, so the history keeps what the far end confirmed it
played. ``clear()`` drops what is queued here and tells the carrier to drop
what it has buffered; marks sent before it no longer count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from media_server.audio.pcm import PcmResampler
from media_server.audio.playout import PlayoutWaiters, WaitsForPlayout

log = logging.getLogger(__name__)

SPEAKER_RATE = 48000
FRAME_S = 0.02
LEAD_FRAMES = 3  # sent ahead of the clock: the carrier's buffer absorbs jitter
MAX_LAG_S = 0.1  # further behind than this (a stalled loop): a fresh schedule
MAX_QUEUED_S = 60.0
IDLE_WAIT_S = 1.0


class LineWire(Protocol):
    """A carrier's outbound messages (twilio.py, pcm_ws.py)."""

    async def send_audio(self, frame: bytes) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def send_clear(self) -> None: ...


class PhoneSpeaker(WaitsForPlayout):
    def __init__(
        self,
        wire: LineWire,
        *,
        rate: int,
        encode: Callable[[bytes], bytes],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._wire = wire
        self._rate = rate
        self._encode = encode
        self._clock = clock
        self._sleep = sleep
        self._frame_bytes = int(rate * FRAME_S) * 2
        self._resampler = PcmResampler(SPEAKER_RATE, 1, rate)
        self._pending = b""  # < one frame at the line's rate
        # Encoded frames, and marks as (name, samples heard once it comes back).
        self._queue: deque[bytes | tuple[str, int]] = deque()
        self._frames_queued = 0
        self._max_frames = int(MAX_QUEUED_S / FRAME_S)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._epoch = 0
        self._mark_seq = 0
        self._marks: dict[str, int] = {}  # sent, not yet echoed (this epoch only)
        self._written = 0  # 48 kHz samples written since the start
        self._waiters = PlayoutWaiters()
        self._held = False
        self._live = True
        self.played_samples = 0  # confirmed by the carrier's marks
        self.frames_sent = 0
        self.clears_sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="phone-speaker")

    # -- state ------------------------------------------------------------

    @property
    def queued_samples(self) -> int:
        """Written but not yet confirmed heard (48 kHz samples)."""
        return self._written - self.played_samples

    @property
    def is_playing(self) -> bool:
        return self._frames_queued > 0

    @property
    def held(self) -> bool:
        return self._held

    # -- agent side -------------------------------------------------------

    async def write(self, pcm: bytes) -> None:
        epoch = self._epoch
        while self._frames_queued >= self._max_frames and self._live:
            self._room.clear()
            await self._room.wait()
        if epoch != self._epoch or not self._live:
            return
        self._written += len(pcm) // 2
        self._queue_pcm(self._resampler.convert(pcm))

    def _queue_pcm(self, pcm: bytes) -> None:
        data = self._pending + pcm
        fb = self._frame_bytes
        whole = len(data) - len(data) % fb
        for offset in range(0, whole, fb):
            self._queue.append(self._encode(data[offset : offset + fb]))
            self._frames_queued += 1
        self._pending = data[whole:]
        self._wake.set()

    def _mark(self) -> None:
        self._mark_seq += 1
        self._queue.append((f"{self._epoch}.{self._mark_seq}", self._written))
        self._wake.set()

    def end_of_piece(self) -> None:
        """A sentence is queued: mark it, so its echo says it was heard."""
        self._mark()

    def end_of_reply(self) -> None:
        data = self._pending + self._resampler.flush()
        self._pending = b""
        if data:  # the last partial frame, padded with silence to a whole one
            self._queue_pcm(data + bytes(-len(data) % self._frame_bytes))
        self._mark()

    def hold(self) -> None:
        self._held = True

    def release(self) -> None:
        self._held = False
        self._wake.set()

    def clear(self) -> int:
        """Barge-in: drop the queue here and (with ``clear``) at the carrier."""
        self._held = False
        dropped = self.queued_samples
        if dropped or self._marks:
            self.clears_sent += 1
            self._send_soon(self._wire.send_clear())
        self._queue.clear()
        self._frames_queued = 0
        self._pending = b""
        self._resampler = PcmResampler(SPEAKER_RATE, 1, self._rate)
        self._marks.clear()  # their echoes after a clear say nothing about hearing
        self._written = self.played_samples
        self._epoch += 1
        self._room.set()
        self._waiters.release()
        return dropped

    def confirm(self, name: str) -> None:
        """The carrier played everything up to mark ``name``."""
        heard = self._marks.pop(name, None)
        if heard is None or heard <= self.played_samples:
            return
        self.played_samples = heard
        self._waiters.played(heard, self._clock())

    def stop(self) -> None:
        self._live = False
        self._queue.clear()
        self._frames_queued = 0
        self._room.set()
        self._wake.set()
        self._waiters.stop()
        if self._task is not None:
            self._task.cancel()

    # -- the line side ----------------------------------------------------

    def _send_soon(self, message: Awaitable[None]) -> None:
        task = asyncio.ensure_future(message)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _run(self) -> None:
        anchor: float | None = None
        n = 0
        try:
            while self._live:
                if not self._queue or self._held:
                    anchor = None  # the next audio starts a fresh schedule
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IDLE_WAIT_S):
                            await self._wake.wait()
                    continue
                item = self._queue.popleft()
                if isinstance(item, tuple):
                    name, heard = item
                    self._marks[name] = heard
                    await self._wire.send_mark(name)
                    continue
                epoch = self._epoch
                self._frames_queued -= 1
                if self._frames_queued < self._max_frames:
                    self._room.set()
                now = self._clock()
                if anchor is None or now - (anchor + n * FRAME_S) > MAX_LAG_S:
                    anchor, n = now, 0
                delay = anchor + (n - LEAD_FRAMES) * FRAME_S - now
                if delay > 0:
                    await self._sleep(delay)
                    if epoch != self._epoch or not self._live:
                        continue  # cleared while it waited: the caller must not hear it
                n += 1
                await self._wire.send_audio(item)
                self.frames_sent += 1
                self._waiters.played(self.played_samples, self._clock())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the line is gone; the transport notices and closes
            log.info("phone speaker stopped: %s", type(exc).__name__)
