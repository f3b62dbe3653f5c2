"""The agent's voice: an aiortc audio track fed with 48 kHz mono PCM.

aiortc's RTP sender sends whatever ``recv()`` returns as soon as it returns,
so this track alone sets the pace: one 20 ms frame per 20 ms on an absolute
clock, silence when there is nothing to say (the browser expects a continuous
stream), and ``clear()`` for barge-in. ``recv()`` must never raise except
``MediaStreamError`` after ``stop()``: aiortc stops a track whose ``recv()``
raises, and the agent would stay mute for the rest of the session.

With ``encode_with()`` it returns Opus packets it encoded itself instead of
PCM frames (``opus_encoder``: cheaper, and no trip through aiortc's pool).

Single writer: one turn at a time calls ``write()``/``end_of_reply()``.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media_server.audio.opus_encoder import SpeechOpusEncoder
from media_server.audio.playout import PlayoutWaiters, WaitsForPlayout
from media_server.rtc.level import SILENT

log = logging.getLogger(__name__)


class AgentAudioTrack(WaitsForPlayout, MediaStreamTrack):
    kind = "audio"

    SAMPLE_RATE = 48000
    FRAME_SAMPLES = 960  # 20 ms: 10 ms frames double aiortc's per-frame cost
    FRAME_BYTES = FRAME_SAMPLES * 2
    FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
    # Later than this behind the schedule (loop stall, slow consumer), start a
    # new schedule from now instead of bursting the backlog at the browser.
    MAX_LAG_S = 0.1
    # A frame leaving more than this behind its schedule is late: the browser's
    # jitter buffer may have to stretch or conceal (an overloaded loop).
    LATE_S = 0.02
    TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
    _SILENCE = bytes(FRAME_BYTES)

    def __init__(
        self,
        *,
        max_queued_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_late: Callable[[], object] = lambda: None,
        on_played: Callable[[bytes, float], object] | None = None,
    ) -> None:
        """``clock``/``sleep`` are injectable so tests pace deterministically;
        ``on_late()`` runs for each frame that leaves late (a metric);
        ``on_played(pcm, at)`` gets each frame of real audio as it leaves, at
        clock time ``at`` (the echo guard's reference)."""
        super().__init__()
        self._clock = clock
        self._sleep = sleep
        self._on_late = on_late
        self._on_played = on_played
        self._max_queued_samples = max(self.FRAME_SAMPLES, int(max_queued_s * self.SAMPLE_RATE))
        # (frame bytes, real samples in it): a padded last frame has fewer.
        self._queue: deque[tuple[bytes, int]] = deque()
        self._queued_samples = 0
        self._pending = b""  # < one frame of written audio, or a blocked write's rest
        self._room = asyncio.Event()
        self._room.set()
        self._write_lock = asyncio.Lock()
        self._epoch = 0  # bumped by clear(): writes begun before it drop their audio
        self._waiters = PlayoutWaiters()
        # Pacing: frame n is due at _anchor + n * FRAME_S.
        self._anchor: float | None = None
        self._n = 0
        self._pts = 0
        self._encoder: SpeechOpusEncoder | None = None
        # Counters (metrics, tests).
        self.played_samples = 0  # real (non-filler) samples returned by recv()
        self.frames_sent = 0
        self.silence_frames = 0
        self.late_frames = 0
        self.reanchors = 0
        self._held = False  # hold(): silence goes out, the queue waits

    # -- state --------------------------------------------------------------

    @property
    def queued_samples(self) -> int:
        """Real samples waiting in whole frames (a not-yet-flushed partial frame excluded)."""
        return self._queued_samples

    def encode_with(self, encoder: SpeechOpusEncoder) -> None:
        """Return Opus packets made by ``encoder`` instead of PCM frames.

        Only when the negotiated send codec is Opus (``sends_opus``): aiortc's
        sender passes packets through as they are. Set it before the first
        ``recv()``.
        """
        self._encoder = encoder

    @property
    def is_playing(self) -> bool:
        return bool(self._queue)

    @property
    def _live(self) -> bool:
        return self.readyState == "live"

    # -- aiortc side ----------------------------------------------------------

    async def recv(self) -> av.AudioFrame | av.Packet:
        if not self._live:
            raise MediaStreamError
        try:
            await self._pace()
        except Exception:  # a misbehaving injected clock/sleep must not mute us
            log.exception("outbound pacing failed")
        if not self._live:  # stopped while we slept
            raise MediaStreamError
        try:
            return self._next_frame()
        except Exception:
            log.exception("outbound frame failed; sending silence")
            return self._emit(self._SILENCE, silent=True)

    async def _pace(self) -> None:
        now = self._clock()
        if self._anchor is None:
            self._anchor, self._n = now, 0
            return
        self._n += 1
        delay = self._anchor + self._n * self.FRAME_S - now
        if delay > 0:
            await self._sleep(delay)
            return
        if -delay > self.LATE_S:
            self.late_frames += 1
            self._on_late()
        if -delay > self.MAX_LAG_S:
            self.reanchors += 1
            # Keep RTP time on the wall clock: the browser then sees a gap it
            # conceals, not audio arriving late, which would grow its jitter
            # buffer (measured in Chromium: ~0.9 s and rising after loop
            # stalls, instead of ~50 ms).
            self._pts += int(-delay / self.FRAME_S) * self.FRAME_SAMPLES
            self._anchor, self._n = now, 0

    def _next_frame(self) -> av.AudioFrame | av.Packet:
        if not self._queue or self._held:
            self.silence_frames += 1
            return self._emit(self._SILENCE, silent=True)
        data, real = self._queue.popleft()
        self._queued_samples -= real
        self.played_samples += real
        if self._queued_samples < self._max_queued_samples:
            self._room.set()
        frame = self._emit(data)
        now = self._clock()
        if self._on_played is not None:
            self._on_played(data, now)
        self._waiters.played(self.played_samples, now)
        return frame

    def _emit(self, data: bytes, *, silent: bool = False) -> av.AudioFrame | av.Packet:
        """One frame of audio at the next pts, as the sender takes it: an Opus
        packet with an encoder, else a PCM frame. ``silent``: digital silence."""
        pts = self._pts
        self._pts += self.FRAME_SAMPLES
        self.frames_sent += 1
        if self._encoder is not None:
            try:
                return self._encoder.encode(data, pts, silent=silent)
            except Exception:
                # Silence in this frame's slot: the stream keeps its clock.
                log.exception("encoding an outbound frame failed; sending silence")
                return self._encoder.silence(pts)
        # Measured ~4.5 µs: cheaper than from_ndarray (~11.5 µs). A fresh frame
        # every time: aiortc encodes it in a worker thread after we return.
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.FRAME_SAMPLES)
        frame.planes[0].update(data)
        frame.sample_rate = self.SAMPLE_RATE
        frame.time_base = self.TIME_BASE
        frame.pts = pts
        if silent:
            frame.opaque = SILENT  # its audio level needs no computing
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._queued_samples = 0
        self._pending = b""
        self._room.set()  # blocked writers see the stop and return
        self._waiters.stop()

    # -- agent side ----------------------------------------------------------

    async def write(self, pcm: bytes) -> None:
        """Queue s16le mono 48 kHz PCM of any length, in 20 ms frames.

        Blocks while ``max_queued_s`` of audio is waiting. Audio from a write
        that was blocked when ``clear()`` or ``stop()`` ran is dropped.
        """
        epoch = self._epoch
        if not isinstance(pcm, bytes):
            pcm = bytes(pcm)  # frames are sliced from it and must not change later
        async with self._write_lock:
            if epoch != self._epoch or not self._live:
                return
            data = self._pending + pcm if self._pending else pcm
            self._pending = b""
            fb = self.FRAME_BYTES
            offset = 0
            while len(data) - offset >= fb:
                if self._queued_samples >= self._max_queued_samples:
                    # Park the rest in _pending so clear() counts it as dropped.
                    self._pending = data[offset:]
                    self._room.clear()
                    await self._room.wait()
                    if epoch != self._epoch or not self._live:
                        return
                    self._pending = b""
                self._queue.append((data[offset : offset + fb], self.FRAME_SAMPLES))
                self._queued_samples += self.FRAME_SAMPLES
                offset += fb
            self._pending = data[offset:]

    def flush_pending(self) -> None:
        """Pad a partial frame with silence and queue it."""
        if not self._pending:
            return
        real = len(self._pending) // 2
        frame = self._pending[: real * 2].ljust(self.FRAME_BYTES, b"\x00")
        self._pending = b""
        if real and self._live:
            self._queue.append((frame, real))
            self._queued_samples += real

    def end_of_piece(self) -> None:
        """A piece of the reply (a sentence) is all queued: nothing to do
        here, the browser confirms nothing (a phone line marks it)."""

    def end_of_reply(self) -> None:
        """The reply is complete: queue its last partial frame."""
        self.flush_pending()

    def hold(self) -> None:
        """Stop playing at once but keep what is queued: the person may only
        be saying "mm-hmm". ``release()`` goes on from the very next sample."""
        self._held = True

    def release(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def clear(self) -> int:
        """Barge-in: drop all queued and pending audio at once. Returns samples dropped."""
        self._held = False
        dropped = self._queued_samples + len(self._pending) // 2
        self._queue.clear()
        self._queued_samples = 0
        self._pending = b""
        self._epoch += 1
        self._room.set()
        self._waiters.release()
        return dropped
