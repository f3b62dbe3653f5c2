"""Who is waiting on the agent's track: for the first frame of audio to
leave it, or for a number of samples to have been played.

The track calls ``played(samples, at)`` as each real-audio frame leaves and
``release()`` when its queue is cleared or it stops. Futures, not events:
each waiter has its own target, and a turn cut short must not leave one
behind.
"""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamError


def _mark_retrieved(fut: asyncio.Future) -> None:
    # A future nobody awaited must not log "exception was never retrieved".
    if not fut.cancelled():
        fut.exception()


class PlayoutWaiters:
    def __init__(self) -> None:
        self._targets: list[tuple[int, asyncio.Future[bool]]] = []
        self._first_audio: list[asyncio.Future[float]] = []

    def __len__(self) -> int:
        """Waiters of either kind still pending (a test checks none leak)."""
        return len(self._targets) + len(self._first_audio)

    def played(self, played_samples: int, at: float) -> None:
        """A real-audio frame left at clock time ``at``; ``played_samples`` so far."""
        if self._first_audio:
            for fut in self._first_audio:
                if not fut.done():
                    fut.set_result(at)
            self._first_audio.clear()
        for target, fut in self._targets:
            if played_samples >= target and not fut.done():
                fut.set_result(True)

    def release(self) -> None:
        """The queue was cleared: every sample waiter gets False."""
        for _, fut in self._targets:
            if not fut.done():
                fut.set_result(False)

    def stop(self) -> None:
        """The track stopped: sample waiters get False, first-audio ones fail."""
        self.release()
        for fut in self._first_audio:
            if not fut.done():
                fut.set_exception(MediaStreamError("track stopped"))
        self._first_audio.clear()

    def first_audio(self, live: bool) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_mark_retrieved)
        if live:
            self._first_audio.append(fut)
        else:
            fut.set_exception(MediaStreamError("track stopped"))
        return fut

    async def until_played(self, target: int, timeout: float) -> bool:
        """True once ``played(n >= target)``; False on timeout or release()."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (target, fut)
        self._targets.append(entry)
        try:
            # Not asyncio.wait_for: on 3.11 it swallows a cancellation that
            # arrives as the future completes (clear() + task.cancel() on
            # barge-in do exactly that), and the cut turn would carry on.
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            return False
        finally:
            self._targets.remove(entry)


class WaitsForPlayout:
    """``wait_until_played`` and ``on_first_audio`` for a speaker that counts
    ``played_samples``, knows whether it is ``_live`` and keeps its
    ``_waiters`` (the WebRTC track and the phone line's speaker)."""

    played_samples: int
    _live: bool
    _waiters: PlayoutWaiters

    async def wait_until_played(self, target_played_samples: int, timeout: float) -> bool:
        """True once ``played_samples >= target``; False on timeout, clear() or stop()."""
        if self.played_samples >= target_played_samples:
            return True
        if not self._live:
            return False
        return await self._waiters.until_played(target_played_samples, timeout)

    def on_first_audio(self) -> asyncio.Future[float]:
        """A future for the clock time the next real-audio frame leaves."""
        return self._waiters.first_audio(self._live)
