"""The phone speaker: real-time frames in the line's format, a mark after each
sentence, heard = what the carrier confirmed, clear drops everything."""

from __future__ import annotations

import asyncio

import pytest

from media_server.telephony import mulaw
from media_server.telephony.speaker import FRAME_S, PhoneSpeaker
from tests.fakes.pipeline import wait_until

SECOND_48K = bytes(96000)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    async def send_audio(self, frame: bytes) -> None:
        self.sent.append(("audio", frame))

    async def send_mark(self, name: str) -> None:
        self.sent.append(("mark", name))

    async def send_clear(self) -> None:
        self.sent.append(("clear", None))

    def marks(self) -> list[str]:
        return [str(v) for k, v in self.sent if k == "mark"]

    def frames(self) -> list[bytes]:
        return [v for k, v in self.sent if k == "audio"]  # type: ignore[misc]


@pytest.fixture
async def line():
    wire = Wire()
    speaker = PhoneSpeaker(wire, rate=8000, encode=mulaw.encode, sleep=lambda s: asyncio.sleep(0))
    speaker.start()
    yield wire, speaker
    speaker.stop()


async def test_sentences_are_marked_and_heard_only_once_confirmed(line) -> None:
    wire, speaker = line
    await speaker.write(SECOND_48K)
    speaker.end_of_piece()
    await speaker.write(SECOND_48K[:48000])
    speaker.end_of_reply()
    await wait_until(lambda: len(wire.marks()) == 2, timeout=2)
    # 1.5 s at 8 kHz μ-law: 75 frames of 160 bytes, the marks between them.
    # 1.5 s at 8 kHz μ-law: 75 frames of 160 bytes (+1: the resampler's
    # delay line, flushed and padded at the reply's end).
    sizes = [len(f) for f in wire.frames()]
    assert set(sizes) == {int(8000 * FRAME_S)} and len(sizes) in (75, 76)
    kinds = [k for k, _ in wire.sent]
    assert kinds.index("mark") in (49, 50)  # after the first sentence's frames
    assert speaker.played_samples == 0 and speaker.queued_samples == 72000
    first, end = wire.marks()
    speaker.confirm(first)
    assert speaker.played_samples == 48000
    speaker.confirm("no-such-mark")
    assert speaker.played_samples == 48000
    done = asyncio.create_task(speaker.wait_until_played(72000, timeout=2))
    speaker.confirm(end)  # the reply's end: the rest was played
    assert await done and speaker.played_samples == 72000


async def test_clear_drops_the_queue_tells_the_carrier_and_voids_old_marks(line) -> None:
    wire, speaker = line
    speaker.hold()  # nothing leaves while held
    await speaker.write(SECOND_48K)
    speaker.end_of_piece()
    await asyncio.sleep(0.01)
    assert wire.sent == []
    speaker.release()
    await wait_until(lambda: wire.marks(), timeout=2)
    [mark] = wire.marks()
    await speaker.write(SECOND_48K)
    assert speaker.clear() == 96000
    await wait_until(lambda: ("clear", None) in wire.sent, timeout=2)
    speaker.confirm(mark)  # a carrier echoes pending marks on clear: not heard
    assert speaker.played_samples == 0 and speaker.queued_samples == 0
    frames = len(wire.frames())
    await asyncio.sleep(0.05)
    assert len(wire.frames()) == frames  # nothing of the cleared audio follows
    assert speaker.clear() == 0 and wire.sent.count(("clear", None)) == 1
