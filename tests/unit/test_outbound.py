"""AgentAudioTrack: pacing, silence, clear(), backpressure, playback accounting.

Pacing runs on an injected fake clock whose sleep() advances it, so timings
are exact and the tests take no wall time; one loose real-clock test remains.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from media_server.audio.opus_encoder import SpeechOpusEncoder
from media_server.audio.outbound import AgentAudioTrack

FRAME = 960
FRAME_BYTES = 1920


class FakeClock:
    """time.monotonic + asyncio.sleep stand-ins: sleeping advances the clock."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.t = 50.0
        self.oversleep = oversleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.t += delay + self.oversleep
        await asyncio.sleep(0)


def ramp(samples: int, start: int = 1) -> bytes:
    """Distinct non-zero samples, so frames can be told apart."""
    return (np.arange(start, start + samples) % 30000 + 1).astype("<i2").tobytes()


def make(clock: FakeClock | None = None, **kw) -> tuple[AgentAudioTrack, FakeClock]:
    clock = clock or FakeClock()
    return AgentAudioTrack(clock=clock, sleep=clock.sleep, **kw), clock


def frame_bytes(frame) -> bytes:
    return frame.to_ndarray().tobytes()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- pacing -------------------------------------------------------------------


async def test_frames_are_20ms_48k_mono_s16_with_increasing_pts() -> None:
    track, clock = make()
    assert track.kind == "audio"
    frames = [await track.recv() for _ in range(50)]
    assert [f.pts for f in frames] == [i * FRAME for i in range(50)]
    f = frames[0]
    assert (f.samples, f.sample_rate, f.format.name, f.layout.name) == (960, 48000, "s16", "mono")
    assert f.time_base == fractions.Fraction(1, 48000)
    # First frame at once, then one per 20 ms.
    assert clock.t - 50.0 == pytest.approx(49 * 0.02)
    assert clock.sleeps == pytest.approx([0.02] * 49)


async def test_absolute_schedule_does_not_drift_when_sleep_oversleeps() -> None:
    track, clock = make(FakeClock(oversleep=0.004))
    for _ in range(101):
        await track.recv()
    # A relative "sleep 20 ms" loop would be 100 * 4 ms = 0.4 s late by now.
    assert clock.t - 50.0 == pytest.approx(100 * 0.02 + 0.004, abs=1e-9)
    assert clock.sleeps[1:] == pytest.approx([0.016] * 99)
    assert track.reanchors == 0


async def test_small_lag_catches_up_large_lag_reanchors() -> None:
    track, clock = make()
    await track.recv()
    clock.t += 0.05  # a 50 ms stall: catch up without a new schedule
    await track.recv()
    await track.recv()
    assert clock.sleeps == []  # frames 1 and 2 were already due
    before = await track.recv()
    assert clock.sleeps == pytest.approx([0.01])
    assert track.reanchors == 0

    clock.t += 1.0  # a 1 s stall: do not burst 50 frames at the browser
    after = await track.recv()
    await track.recv()
    assert track.reanchors == 1
    assert clock.sleeps[-1] == pytest.approx(0.02)
    # ...and the RTP clock jumps with the wall clock (a gap the browser
    # conceals), instead of pretending no time passed.
    assert after.pts - before.pts >= 45 * FRAME


async def test_frames_leaving_behind_schedule_are_counted_late() -> None:
    late: list[int] = []
    track, clock = make(on_late=lambda: late.append(1))
    await track.recv()
    clock.t += 0.015  # within a frame's slack: not late
    await track.recv()
    clock.t += 0.07  # frames 2, 3, 4 leave 50, 30 and 10 ms behind schedule
    for _ in range(3):
        await track.recv()
    assert track.late_frames == len(late) == 2
    await track.recv()  # back on schedule
    assert track.late_frames == 2


async def test_real_clock_paces_loosely() -> None:
    track = AgentAudioTrack()
    t0 = time.monotonic()
    for _ in range(11):
        await track.recv()
    elapsed = time.monotonic() - t0
    assert 0.19 <= elapsed < 2.0


# -- content --------------------------------------------------------------------


async def test_silence_when_idle() -> None:
    track, _ = make()
    for _ in range(5):
        assert frame_bytes(await track.recv()) == bytes(FRAME_BYTES)
    assert track.silence_frames == 5
    assert track.played_samples == 0
    assert not track.is_playing


async def test_written_audio_comes_out_in_order_and_last_frame_is_padded() -> None:
    track, _ = make()
    pcm = ramp(2 * FRAME + 480)
    await track.write(pcm[:1001])  # odd sizes: frames span writes
    await track.write(pcm[1001:])
    assert track.queued_samples == 2 * FRAME
    assert track.is_playing
    track.end_of_reply()
    assert track.queued_samples == 2 * FRAME + 480
    out = [frame_bytes(await track.recv()) for _ in range(4)]
    assert out[0] + out[1] + out[2][:960] == pcm
    assert out[2][960:] == bytes(960)
    assert out[3] == bytes(FRAME_BYTES)
    assert track.played_samples == 2 * FRAME + 480
    assert not track.is_playing


async def test_clear_drops_everything_at_once() -> None:
    track, _ = make()
    await track.write(ramp(50 * FRAME + 100))  # 1 s + a partial frame
    for _ in range(5):
        await track.recv()
    dropped = track.clear()
    assert dropped == 45 * FRAME + 100
    assert track.queued_samples == 0
    assert not track.is_playing
    assert frame_bytes(await track.recv()) == bytes(FRAME_BYTES)
    track.end_of_reply()  # the partial frame went too
    assert frame_bytes(await track.recv()) == bytes(FRAME_BYTES)
    assert track.played_samples == 5 * FRAME


# -- backpressure ---------------------------------------------------------------


async def test_write_blocks_when_full_and_resumes_as_frames_play() -> None:
    track, _ = make(max_queued_s=0.1)  # 5 frames
    writer = asyncio.create_task(track.write(ramp(12 * FRAME)))
    await settle()
    assert not writer.done()
    assert track.queued_samples == 5 * FRAME
    await track.recv()
    await settle()
    assert track.queued_samples == 5 * FRAME  # refilled by one frame, still bounded
    assert not writer.done()
    for _ in range(7):
        await track.recv()
        await settle()
    await asyncio.wait_for(writer, 1.0)
    assert track.played_samples + track.queued_samples == 12 * FRAME


async def test_clear_wakes_a_blocked_writer_and_drops_its_rest() -> None:
    track, _ = make(max_queued_s=0.1)
    writer = asyncio.create_task(track.write(ramp(12 * FRAME)))
    await settle()
    assert not writer.done()
    assert track.clear() == 12 * FRAME  # queued + the blocked write's remainder
    await asyncio.wait_for(writer, 1.0)
    assert track.queued_samples == 0
    assert frame_bytes(await track.recv()) == bytes(FRAME_BYTES)


async def test_stop_wakes_a_blocked_writer_and_recv_raises() -> None:
    track, _ = make(max_queued_s=0.1)
    writer = asyncio.create_task(track.write(ramp(12 * FRAME)))
    await settle()
    track.stop()
    await asyncio.wait_for(writer, 1.0)
    with pytest.raises(MediaStreamError):
        await track.recv()
    await track.write(ramp(FRAME))  # after stop: dropped, no error
    assert track.queued_samples == 0


async def test_stop_during_pacing_sleep_raises_media_stream_error() -> None:
    track = AgentAudioTrack()
    await track.recv()
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.001)
    track.stop()
    with pytest.raises(MediaStreamError):
        await pending


async def test_recv_survives_a_broken_sleep() -> None:
    async def bad_sleep(delay: float) -> None:
        raise RuntimeError("boom")

    clock = FakeClock()
    track = AgentAudioTrack(clock=clock, sleep=bad_sleep)
    await track.write(ramp(FRAME))
    await track.recv()
    frame = await track.recv()  # pacing failed: still a frame, never an exception
    assert frame.samples == FRAME
    assert track.played_samples == FRAME


# -- playback accounting --------------------------------------------------------


async def test_wait_until_played() -> None:
    track, _ = make()
    await track.write(ramp(3 * FRAME))
    target = track.played_samples + 3 * FRAME
    waiter = asyncio.create_task(track.wait_until_played(target, timeout=5))
    await track.recv()
    await track.recv()
    await settle()
    assert not waiter.done()
    await track.recv()
    assert await asyncio.wait_for(waiter, 1.0) is True
    assert len(track._waiters) == 0
    assert await track.wait_until_played(target, timeout=0) is True  # already reached


async def test_wait_until_played_times_out() -> None:
    track, _ = make()
    await track.write(ramp(FRAME))
    t0 = time.monotonic()
    assert await track.wait_until_played(FRAME, timeout=0.05) is False
    assert time.monotonic() - t0 < 1.0
    assert len(track._waiters) == 0


async def test_wait_until_played_is_false_after_clear_or_stop() -> None:
    track, _ = make()
    await track.write(ramp(10 * FRAME))
    waiter = asyncio.create_task(track.wait_until_played(10 * FRAME, timeout=5))
    await settle()
    track.clear()
    assert await asyncio.wait_for(waiter, 1.0) is False

    await track.write(ramp(10 * FRAME))
    waiter = asyncio.create_task(track.wait_until_played(10 * FRAME, timeout=5))
    await settle()
    track.stop()
    assert await asyncio.wait_for(waiter, 1.0) is False
    assert await track.wait_until_played(10 * FRAME, timeout=5) is False


async def test_on_first_audio_resolves_at_the_first_real_frame() -> None:
    track, clock = make()
    fut = track.on_first_audio()
    await track.recv()
    await track.recv()  # silence does not count
    assert not fut.done()
    await track.write(ramp(2 * FRAME))
    await track.recv()
    assert fut.done()
    assert fut.result() == pytest.approx(clock.t)
    assert clock.t == pytest.approx(50.04)
    # A new future waits for the next real frame, not the past one.
    fut2 = track.on_first_audio()
    await track.recv()
    assert fut2.result() == pytest.approx(50.06)


async def test_on_first_audio_fails_on_stop() -> None:
    track, _ = make()
    fut = track.on_first_audio()
    track.stop()
    with pytest.raises(MediaStreamError):
        await fut
    with pytest.raises(MediaStreamError):
        await track.on_first_audio()


# -- encoding in the track ---------------------------------------------------------


class BrokenEncoder(SpeechOpusEncoder):
    def encode(self, pcm: bytes, pts: int, *, silent: bool = False) -> av.Packet:
        if not silent:
            raise RuntimeError("codec gone")
        return super().encode(pcm, pts, silent=silent)


async def test_with_an_encoder_it_returns_opus_packets_on_the_same_clock() -> None:
    track, clock = make()
    encoder = SpeechOpusEncoder()
    track.encode_with(encoder)
    await track.write(ramp(3 * FRAME))
    track.end_of_reply()
    packets = [await track.recv() for _ in range(50)]  # the codec goes quiet in < 47
    assert all(isinstance(p, av.Packet) for p in packets)
    assert [p.pts for p in packets] == [i * FRAME for i in range(len(packets))]
    assert clock.sleeps == pytest.approx([0.02] * (len(packets) - 1))
    silence = bytes(encoder.silence(0))
    assert all(bytes(p) != silence for p in packets[:3])  # the reply, encoded
    assert bytes(packets[-1]) == silence
    assert track.played_samples == 3 * FRAME
    assert track.silence_frames == len(packets) - 3


async def test_a_failing_encoder_sends_silence_instead_of_stopping_the_track() -> None:
    track, _ = make()
    track.encode_with(BrokenEncoder())
    await track.write(ramp(FRAME))
    packet = await track.recv()  # the codec raised: silence, never an exception
    assert bytes(packet) == bytes(SpeechOpusEncoder().silence(0))
    following = await track.recv()
    assert isinstance(following, av.Packet)
    assert (packet.pts, following.pts) == (0, FRAME)  # in the failed frame's slot: no gap
    assert track.frames_sent == 2
