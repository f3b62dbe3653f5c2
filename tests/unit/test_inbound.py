"""Inbound audio: aiortc-style frames -> 16 kHz mono PCM, and the consumer task."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from media_server.audio.inbound import InboundAudio, MonoResampler
from tests.audio_fixtures import audio_frames, dominant_frequency, rms_dbfs, sine, to_stereo


def stereo_frames(seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> list:
    return audio_frames(to_stereo(sine(seconds, freq, rate=48000, amplitude=amplitude)))


# -- MonoResampler ------------------------------------------------------------


def test_stereo_48k_to_mono_16k_keeps_length_frequency_and_level() -> None:
    res = MonoResampler()
    frames = stereo_frames(1.0)
    assert frames[0].layout.name == "stereo" and frames[0].samples == 960
    pcm = b"".join(res.convert(f) for f in frames)
    samples = len(pcm) // 2
    # The resampler holds back a few ms of filter delay until more input comes.
    assert 16000 - 48 <= samples <= 16000
    assert dominant_frequency(pcm[3200:], 16000) == pytest.approx(440, abs=3)
    # Identical channels downmix to the same level (±1 dB).
    src = sine(1.0, 440, rate=48000, amplitude=0.5)
    assert rms_dbfs(pcm[3200:]) == pytest.approx(rms_dbfs(src), abs=1.0)


def test_each_20ms_frame_yields_about_320_samples() -> None:
    res = MonoResampler()
    sizes = [len(res.convert(f)) // 2 for f in stereo_frames(0.5)]
    assert all(300 <= s <= 320 for s in sizes)
    assert sizes[5:] == [320] * (len(sizes) - 5)


def test_frequency_above_8k_is_filtered_out() -> None:
    # A 12 kHz tone cannot exist at 16 kHz: it must be removed, not aliased to 4 kHz.
    res = MonoResampler()
    pcm = b"".join(res.convert(f) for f in stereo_frames(0.5, freq=12000))
    assert rms_dbfs(pcm[1600:]) < -40


def test_mono_input_and_format_change_mid_stream() -> None:
    res = MonoResampler()
    mono = audio_frames(sine(0.2, 300, rate=48000), channels=1)
    stereo = stereo_frames(0.2, freq=300)
    out = [res.convert(f) for f in mono + stereo + mono]
    pcm = b"".join(out)
    assert abs(len(pcm) // 2 - 3 * 3200) <= 100
    assert dominant_frequency(pcm, 16000) == pytest.approx(300, abs=5)


def test_other_rate() -> None:
    res = MonoResampler(rate=8000)
    pcm = b"".join(res.convert(f) for f in stereo_frames(1.0, freq=500))
    assert 8000 - 32 <= len(pcm) // 2 <= 8000


# -- InboundAudio -------------------------------------------------------------


class FakeTrack:
    """A remote track: frames from a queue; ``end()`` makes recv raise MediaStreamError."""

    kind = "audio"
    id = "fake"

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.recv_calls = 0

    async def recv(self):
        self.recv_calls += 1
        item = await self.queue.get()
        if item is None:
            raise MediaStreamError
        return item

    def end(self) -> None:
        self.queue.put_nowait(None)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 0.02
        return self.t


async def drain(track: FakeTrack) -> None:
    for _ in range(200):
        if track.queue.empty():
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_frames_reach_the_sink_as_16k_mono_with_clock_times() -> None:
    track = FakeTrack()
    got: list[tuple[bytes, float]] = []
    inbound = InboundAudio(track, lambda pcm, now: got.append((pcm, now)), clock=FakeClock())
    inbound.start()
    for f in stereo_frames(0.5):
        track.queue.put_nowait(f)
    await drain(track)
    assert inbound.frames_in == 25
    assert len(got) == 25
    assert [now for _, now in got] == pytest.approx([100.0 + 0.02 * (i + 1) for i in range(25)])
    total = sum(len(p) for p, _ in got) // 2
    assert 8000 - 48 <= total <= 8000
    assert inbound.bytes_out == total * 2
    await inbound.close()


async def test_sink_exceptions_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    track = FakeTrack()
    calls = []

    def sink(pcm: bytes, now: float) -> None:
        calls.append(len(pcm))
        if len(calls) <= 3:
            raise RuntimeError("sink broke")

    inbound = InboundAudio(track, sink)
    inbound.start()
    with caplog.at_level(logging.ERROR, logger="media_server.audio.inbound"):
        for f in stereo_frames(0.2):
            track.queue.put_nowait(f)
        await drain(track)
    assert len(calls) == 10
    assert inbound.sink_errors == 3
    assert inbound.running
    assert sum("sink failed" in r.getMessage() for r in caplog.records) == 1  # not one per frame
    await inbound.close()


async def test_media_stream_error_ends_quietly() -> None:
    track = FakeTrack()
    inbound = InboundAudio(track, lambda pcm, now: None)
    inbound.start()
    track.queue.put_nowait(stereo_frames(0.02)[0])
    track.end()
    await drain(track)
    await asyncio.sleep(0)
    assert not inbound.running
    assert inbound.frames_in == 1
    await inbound.close()
    await inbound.close()


async def test_close_cancels_a_recv_that_never_returns() -> None:
    # AIORTC-NOTES: if the connection fails before media, recv() may hang forever.
    track = FakeTrack()
    inbound = InboundAudio(track, lambda pcm, now: None)
    inbound.start()
    await asyncio.sleep(0)
    assert track.recv_calls == 1
    task = inbound._task
    await asyncio.wait_for(inbound.close(), timeout=1.0)
    assert task is not None and task.cancelled()
    assert not inbound.running
    await inbound.close()  # idempotent
    inbound.start()  # no restart after close
    assert not inbound.running


async def test_bad_frame_is_skipped() -> None:
    track = FakeTrack()
    got = []
    inbound = InboundAudio(track, lambda pcm, now: got.append(pcm))
    inbound.start()
    track.queue.put_nowait(object())  # not a frame at all
    for f in stereo_frames(0.1):
        track.queue.put_nowait(f)
    await drain(track)
    assert inbound.convert_errors == 1
    assert inbound.frames_in == 6
    assert len(got) == 5
    assert np.frombuffer(b"".join(got), dtype="<i2").any()
    await inbound.close()
