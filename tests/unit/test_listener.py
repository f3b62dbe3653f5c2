"""The turn-taking policy, frame by frame with an exact clock.

These cover what the WebRTC runs in tests/integration check for turns and
barge-in (a turn after silence, barge-in after BARGE_IN_MIN_MS of speech
over the agent, short speech over the agent ignored, blips dropped, the
streaming transcript handed over or cancelled), in milliseconds. A frame is
voiced when it is loud, so every decision's time is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from media_server.listening.listener import (
    BargeIn,
    Listener,
    PersonStarted,
    SpeechIgnored,
    TurnEnded,
)
from media_server.listening.segmenter import SegmenterConfig
from media_server.types import Transcript
from tests.audio_fixtures import silence, sine

FRAME_S = 0.02
FRAME = 640
T0 = 500.0


def loud(frame: bytes) -> bool:
    return int(np.max(np.abs(np.frombuffer(frame, "<i2").astype(np.int32)))) > 5000


def speech(seconds: float) -> bytes:
    return sine(seconds, 220.0)


class RecordingStream:
    def __init__(self) -> None:
        self.fed = b""
        self.cancelled = False

    def feed(self, pcm: bytes) -> None:
        self.fed += pcm

    async def finish(self) -> Transcript:
        return Transcript("streamed")

    def cancel(self) -> None:
        self.cancelled = True


class Clocked:
    """Feeds a listener 20 ms at a time; the floor is the test's to hold."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.now = T0
        self.agent_has_floor = False
        self.log: list[tuple[float, object]] = []

    def play(self, pcm: bytes) -> list:
        out = []
        for i in range(0, len(pcm), FRAME):
            self.now = round(self.now + FRAME_S, 6)
            for d in self.listener.feed(
                pcm[i : i + FRAME], self.now, agent_has_floor=self.agent_has_floor
            ):
                out.append(d)
                self.log.append((self.now, d))
                if isinstance(d, BargeIn):
                    self.agent_has_floor = False  # the session interrupts the turn
                if isinstance(d, TurnEnded):
                    self.agent_has_floor = True  # the session starts a turn
        return out


def make(barge_in_min_ms: int = 200, open_stream=lambda: None, **cfg) -> Clocked:
    config = SegmenterConfig(silence_ms=cfg.pop("silence_ms", 500), **cfg)
    return Clocked(
        Listener(config, barge_in_min_ms=barge_in_min_ms, open_stream=open_stream, is_speech=loud)
    )


def of(decisions: list, kind: type) -> list:
    return [d for d in decisions if isinstance(d, kind)]


def test_a_turn_ends_after_the_silence_when_the_agent_is_quiet():
    c = make(silence_ms=400)
    out = c.play(silence(0.5) + speech(1.0) + silence(1.0))
    assert [type(d) for d in out] == [PersonStarted, TurnEnded]
    (started,), (ended,) = of(out, PersonStarted), of(out, TurnEnded)
    assert started.at == pytest.approx(T0 + 0.5)
    u = ended.utterance
    assert u.speech_ended_at == pytest.approx(T0 + 1.5)
    assert u.turn_ended_at == pytest.approx(T0 + 1.9)  # exactly silence_ms later
    assert c.listener.person_speaking is False


def test_speech_over_the_agent_barges_in_once_it_reaches_the_minimum():
    c = make(barge_in_min_ms=200)
    c.agent_has_floor = True
    out = c.play(silence(0.2) + speech(0.6))
    (barge,) = of(out, BargeIn)
    # speech starts at +0.2 s; 200 ms of voiced audio are counted at +0.4 s.
    assert barge.at == pytest.approx(T0 + 0.4)
    assert c.listener.person_speaking is True
    # What follows is the person's own turn.
    out = c.play(silence(0.8))
    (ended,) = of(out, TurnEnded)
    assert ended.utterance.duration_s >= 0.6


@pytest.mark.parametrize("minimum_ms", [120, 300, 500])
def test_the_barge_in_minimum_is_the_setting(minimum_ms: int):
    c = make(barge_in_min_ms=minimum_ms)
    c.agent_has_floor = True
    out = c.play(speech(1.0))
    (barge,) = of(out, BargeIn)
    assert barge.at == pytest.approx(T0 + minimum_ms / 1000)


def test_short_speech_over_the_agent_is_ignored_not_a_turn():
    c = make(barge_in_min_ms=400, min_speech_ms=100)
    c.agent_has_floor = True
    out = c.play(speech(0.3) + silence(1.0))
    assert of(out, BargeIn) == [] and of(out, TurnEnded) == []
    (ignored,) = of(out, SpeechIgnored)
    assert ignored.reason == "over_agent"
    assert c.agent_has_floor is True  # the agent was never interrupted


def test_a_blip_is_dropped_whoever_holds_the_floor():
    for floor in (False, True):
        c = make(min_speech_ms=250, barge_in_min_ms=1000)
        c.agent_has_floor = floor
        out = c.play(silence(0.2) + speech(0.12) + silence(1.0))
        assert [d.reason for d in of(out, SpeechIgnored)] == ["too_short"]
        assert of(out, TurnEnded) == []


def test_no_barge_in_while_the_agent_is_quiet():
    c = make(barge_in_min_ms=100)
    out = c.play(speech(1.0) + silence(1.0))
    assert of(out, BargeIn) == []
    assert len(of(out, TurnEnded)) == 1


def test_the_streaming_transcript_gets_the_whole_turn_and_is_handed_over():
    opened: list[RecordingStream] = []

    def open_stream():
        opened.append(RecordingStream())
        return opened[-1]

    c = make(open_stream=open_stream, preroll_ms=200, tail_ms=200, silence_ms=400)
    out = c.play(silence(0.5) + speech(1.0) + silence(1.0))
    (ended,) = of(out, TurnEnded)
    assert len(opened) == 1
    stream = opened[0]
    assert ended.stt_stream is stream and not stream.cancelled
    # It heard the pre-roll, the speech and the silence up to the decision;
    # the utterance keeps only tail_ms of that silence.
    assert len(stream.fed) == int((0.2 + 1.0 + 0.4) * 32000)
    assert len(ended.utterance.pcm) == int((0.2 + 1.0 + 0.2) * 32000)
    assert stream.fed.startswith(ended.utterance.pcm)


def test_the_streaming_transcript_is_cancelled_when_speech_is_not_a_turn():
    opened: list[RecordingStream] = []

    def open_stream():
        opened.append(RecordingStream())
        return opened[-1]

    c = make(open_stream=open_stream, barge_in_min_ms=2000)
    c.agent_has_floor = True
    c.play(speech(0.5) + silence(1.0))  # over the agent, below the minimum
    c.agent_has_floor = False
    c.play(speech(0.1) + silence(1.0))  # a blip
    assert len(opened) == 2 and all(s.cancelled for s in opened)


def test_a_refused_stream_is_asked_for_again_at_the_next_turn_only():
    calls = []

    def busy():
        calls.append(1)
        return None

    c = make(open_stream=busy)
    out = c.play(speech(1.0) + silence(1.0))
    assert of(out, TurnEnded)[0].stt_stream is None
    assert len(calls) == 1  # not once per frame
    c.agent_has_floor = False
    c.play(speech(1.0) + silence(1.0))
    assert len(calls) == 2


def test_close_cancels_the_stream_and_stops_listening():
    opened: list[RecordingStream] = []
    c = make(open_stream=lambda: opened.append(RecordingStream()) or opened[-1])
    c.play(speech(0.5))
    c.listener.close()
    assert opened[0].cancelled
    assert c.play(silence(1.0) + speech(1.0) + silence(1.0)) == []
