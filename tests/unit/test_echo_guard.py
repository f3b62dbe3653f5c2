"""The echo guard, frame by frame on an exact clock: the agent's own voice
coming back in the microphone (-6 to -20 dB, 30-150 ms late, through a small
speaker) neither holds nor interrupts the agent, while a person talking over
it still does. Real AEC3, real Silero, espeak-ng speech; no network."""

from __future__ import annotations

import numpy as np
import pytest

from media_server.echo.canceller import Aec3Canceller
from media_server.echo.guard import EchoGuard, ReferenceTimeline
from media_server.listening.decisions import BargeIn, Hold
from media_server.listening.listener import Listener
from media_server.listening.segmenter import SegmenterConfig
from media_server.listening.vad import SileroPool, screened_silero
from tests.audio_fixtures import speech_48k
from tests.echo_room import echo_of, pcm16, to_16k

T0 = 100.0
FRAME_S = 0.02
MIC_FRAME = 640  # 20 ms at 16 kHz
SPEAKER_FRAME = 1920  # 20 ms at 48 kHz
POOL = SileroPool()
AGENT = speech_48k(
    "This is sentence number one of a long answer. Here is the second sentence of it, "
    "and the third one follows right after, so the reply goes on for a while."
)
PERSON = speech_48k("Wait, stop, I have a question about my bill.", voice="en-us+m3")


def call(
    *, level_db: float, delay_ms: float, guard: EchoGuard | None, person_at_s: float | None = None
) -> list:
    """The agent speaks; its echo (and the person, if any) comes back in the
    microphone; returns the listener's decisions while the agent holds the floor."""
    frames = len(AGENT) // SPEAKER_FRAME
    mic = echo_of(AGENT, level_db=level_db, delay_ms=delay_ms, length=frames * MIC_FRAME // 2)
    if person_at_s is not None:
        person = to_16k(PERSON)
        start = int(person_at_s * 16000)
        mic[start : start + person.size] += person[: mic.size - start]
    mic_pcm = pcm16(mic)
    vad = screened_silero(0.5, 2)
    vad.attach(POOL.acquire())
    listener = Listener(
        SegmenterConfig(), is_speech=vad.is_speech, barge_in_min_ms=200, barge_in_confirm_ms=800
    )
    decisions = []
    for n in range(frames):
        at = T0 + n * FRAME_S
        if guard is not None:
            guard.played(AGENT[n * SPEAKER_FRAME : (n + 1) * SPEAKER_FRAME], at)
        heard = mic_pcm[n * MIC_FRAME : (n + 1) * MIC_FRAME]
        if guard is not None:
            heard = guard.clean(heard, at + FRAME_S)
        decisions += listener.feed(heard, at + FRAME_S, agent_has_floor=True)
    POOL.release(vad.detach())
    return decisions


def cut_or_held(decisions: list) -> list:
    return [d for d in decisions if isinstance(d, Hold | BargeIn)]


def test_without_the_guard_the_agents_own_echo_interrupts_it():
    # What the guard is for: Silero hears the agent's voice as a person's.
    decisions = call(level_db=-6, delay_ms=80, guard=None)
    assert any(isinstance(d, BargeIn) for d in decisions)


@pytest.mark.parametrize(("level_db", "delay_ms"), [(-6, 30), (-6, 150), (-12, 80), (-20, 150)])
def test_the_agents_own_echo_neither_holds_nor_interrupts_it(level_db: float, delay_ms: float):
    guard = EchoGuard(Aec3Canceller)
    assert cut_or_held(call(level_db=level_db, delay_ms=delay_ms, guard=guard)) == []
    assert guard.frames_cleaned > 0


@pytest.mark.parametrize("delay_ms", [30, 150])
def test_a_person_talking_over_the_echo_still_interrupts(delay_ms: float):
    decisions = call(
        level_db=-6, delay_ms=delay_ms, guard=EchoGuard(Aec3Canceller), person_at_s=2.0
    )
    # (the floor stays the agent's here, so each frame after the cut says so again)
    cut = next(d for d in decisions if isinstance(d, BargeIn))
    assert 2.0 < cut.at - T0 < 3.5  # within the person's phrase, not the echo before it


@pytest.mark.parametrize(("level_db", "delay_ms"), [(-20, 80), (-6, 150)])
def test_a_talk_over_while_the_canceller_still_learns_is_held_as_soon_as_without_echo(
    level_db: float, delay_ms: float
):
    # 1.5 s into the call AEC3 is still in its first seconds and mutes what
    # it hears over the agent, the person included (it held 580 ms after
    # they began, against 200 ms with no echo at all).
    def held_after_ms(decisions: list) -> float:
        hold = next(d for d in decisions if isinstance(d, Hold))
        return (hold.at - T0 - 1.5) * 1000

    guarded = call(
        level_db=level_db, delay_ms=delay_ms, guard=EchoGuard(Aec3Canceller), person_at_s=1.5
    )
    bare = call(level_db=-120, delay_ms=delay_ms, guard=None, person_at_s=1.5)
    assert held_after_ms(guarded) <= held_after_ms(bare) + 120


def test_a_client_that_cancels_its_own_echo_is_heard_as_it_comes_once_none_was_found():
    # The page keeps the browser's echo cancellation on: nothing comes back, and
    # an unconverged canceller would only eat the person's first words.
    guard = EchoGuard(Aec3Canceller)
    decisions = call(level_db=-90, delay_ms=60, guard=guard, person_at_s=2.0)
    assert guard.detector.state == "absent"
    bare = call(level_db=-90, delay_ms=60, guard=None, person_at_s=2.0)
    first_cut = next(d for d in decisions if isinstance(d, BargeIn))
    assert first_cut == next(d for d in bare if isinstance(d, BargeIn))


def test_the_detector_finds_an_echo_and_keeps_it():
    guard = EchoGuard(Aec3Canceller)
    call(level_db=-20, delay_ms=150, guard=guard)
    assert guard.detector.state == "found" and guard.detector.best > 0.5


def test_with_nothing_played_the_microphone_passes_untouched_and_costs_nothing():
    made = []
    guard = EchoGuard(lambda: made.append(1) or Aec3Canceller())
    person = pcm16(to_16k(PERSON))
    out = b"".join(
        guard.clean(person[i : i + MIC_FRAME], T0 + i / 32000)
        for i in range(0, len(person) - MIC_FRAME + 1, MIC_FRAME)
    )
    assert out == person[: len(out)] and len(out) > 0
    assert made == [] and guard.frames_cleaned == 0


def test_pieces_of_any_size_come_out_in_10_ms_frames_and_keep_the_rest():
    guard = EchoGuard(Aec3Canceller)
    guard.played(AGENT[:SPEAKER_FRAME], T0)
    assert guard.clean(bytes(300), T0 + 0.01) == b""  # less than 10 ms
    assert len(guard.clean(bytes(700), T0 + 0.02)) == 960  # 1000 bytes: three frames
    assert guard.frames_cleaned == 3


def test_the_reference_timeline_reads_what_was_played_when_and_zeros_elsewhere():
    line = ReferenceTimeline(rate=100, keep_s=1.0)  # a ring of 100 samples
    line.add(np.arange(1, 11, dtype=np.int16), start=5.0)  # samples 500..509
    assert line.read(498, 4).tolist() == [0, 0, 1, 2]
    assert line.read(508, 4).tolist() == [9, 10, 0, 0]
    # Reported 2 samples late (the loop's wobble): laid right after, no gap.
    line.add(np.full(10, 7, dtype=np.int16), start=5.12)
    assert line.read(508, 4).tolist() == [9, 10, 7, 7]
    # After a pause, on the same grid of whole frames: 581 -> 580.
    line.add(np.full(10, 3, dtype=np.int16), start=5.81)
    assert line.read(577, 4).tolist() == [0, 0, 0, 3]
    assert line.read(520, 3).tolist() == [0, 0, 0]  # the pause reads as silence
    line.add(np.full(20, 5, dtype=np.int16), start=6.9)  # 690..709: wraps the ring
    assert line.read(688, 4).tolist() == [0, 0, 5, 5]
    assert line.read(708, 4).tolist() == [5, 5, 0, 0]
    assert line.read(600, 2).tolist() == [0, 0]  # older than the ring keeps
    assert line.last_sound_at == pytest.approx(7.1)
