"""Inbound audio: drain the remote aiortc track and hand 16 kHz mono PCM to a sink.

The track is consumed for the whole session, even while the agent speaks:
aiortc's receiver only decodes into a queue, so a track nobody reads would
pile up audio and barge-in would hear the past.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError

from media_server.audio.pcm import FrameConverter

log = logging.getLogger(__name__)

# How long close() waits for the cancelled consumer to finish. The task only
# awaits track.recv(), so cancellation lands at once; this bounds a surprise.
CLOSE_TIMEOUT_S = 2.0
# A sink that raises on every frame would log 50 tracebacks a second.
_SINK_ERROR_LOG_EVERY = 500


class MonoResampler:
    """aiortc frames (packed s16, usually stereo, 48 kHz) -> s16le mono at ``rate``.

    One per session: the underlying PyAV resampler keeps filter state across
    frames, so consecutive 20 ms frames join without clicks.
    """

    def __init__(self, rate: int = 16000) -> None:
        self.rate = rate
        self._converter = FrameConverter(rate)

    def convert(self, frame: av.AudioFrame) -> bytes:
        return self._converter.convert(frame)


class InboundAudio:
    """Consumes a remote aiortc audio track forever (even while the agent speaks)
    and hands 16 kHz mono PCM to a sink.

    ``sink(pcm, now)`` runs synchronously on the event loop for each frame,
    ``now`` being ``clock()`` when the frame arrived. Sink exceptions are logged
    and counted, never fatal. ``MediaStreamError`` (track ended) ends the loop
    quietly; but it may never come (AIORTC-NOTES: a connection that fails before
    media starts leaves ``recv()`` pending), so the owner must call ``close()``.
    """

    def __init__(
        self,
        track,
        sink: Callable[[bytes, float], None],
        *,
        rate: int = 16000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._track = track
        self._sink = sink
        self._clock = clock
        self._resampler = MonoResampler(rate)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Counters for metrics.
        self.frames_in = 0
        self.bytes_out = 0
        self.convert_errors = 0
        self.sink_errors = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the consumer task (once; a no-op after the first call or close)."""
        if self._task is not None or self._closed:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"inbound-audio-{getattr(self._track, 'id', '?')}"
        )

    async def close(self) -> None:
        """Stop consuming. Idempotent. Does not stop the track (the peer connection owns it)."""
        self._closed = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
        if not done:
            log.warning("inbound audio task did not stop within %.1f s", CLOSE_TIMEOUT_S)
            return
        with contextlib.suppress(asyncio.CancelledError):
            task.result()  # consume the outcome so asyncio does not warn about it

    async def _run(self) -> None:
        while True:
            try:
                frame = await self._track.recv()
            except MediaStreamError:
                log.debug("remote audio track ended")
                return
            except Exception:
                # Not part of recv()'s contract; stop instead of spinning on it.
                log.exception("remote audio track failed")
                return
            self.frames_in += 1
            try:
                pcm = self._resampler.convert(frame)
            except Exception:
                self.convert_errors += 1
                if self.convert_errors == 1:
                    log.exception("could not convert an inbound audio frame")
                continue
            if not pcm:
                continue
            self.bytes_out += len(pcm)
            try:
                self._sink(pcm, self._clock())
            except Exception:
                self.sink_errors += 1
                if self.sink_errors % _SINK_ERROR_LOG_EVERY == 1:
                    log.exception("inbound audio sink failed (%d times so far)", self.sink_errors)
