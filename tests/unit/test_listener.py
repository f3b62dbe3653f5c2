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

from media_server.listening.decisions import (
    BargeIn,
    FalseInterruption,
    Hold,
    PauseHeard,
    PersonStarted,
    SpeechIgnored,
    TurnEnded,
)
from media_server.listening.end_of_turn import EndOfTurn
from media_server.listening.listener import Listener
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


def make(barge_in_min_ms: int = 200, open_stream=lambda: None, end_of_turn=None, **cfg) -> Clocked:
    """A listener with the fixed-pause policy (``silence_ms``) unless told."""
    silence_ms = cfg.pop("silence_ms", 500)
    if end_of_turn is None:
        end_of_turn = EndOfTurn("silence", min(200, silence_ms), silence_ms, max(1800, silence_ms))
    return Clocked(
        Listener(
            SegmenterConfig(**cfg),
            barge_in_min_ms=barge_in_min_ms,
            end_of_turn=end_of_turn,
            open_stream=open_stream,
            is_speech=loud,
        )
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


# ---- the end of turn that reads the sentence ---------------------------------

LEXICAL = EndOfTurn("lexical", min_wait_ms=200, default_wait_ms=500, max_wait_ms=1800)


class Transcriber:
    """Answers each PauseHeard with the words of the timeline heard so far,
    ``delay`` frames later (as a speculative STT request would)."""

    def __init__(self, clocked: Clocked, words: list[str], *, delay_frames: int = 0) -> None:
        self.clocked, self.words, self.delay = clocked, words, delay_frames
        self.asked: list[int] = []
        self._due: list[tuple[int, int, str]] = []

    def play(self, pcm: bytes, words: str = "") -> list:
        out = []
        for i in range(0, len(pcm), FRAME):
            for decision in self.clocked.play(pcm[i : i + FRAME]):
                out.append(decision)
                if isinstance(decision, PauseHeard):
                    self.asked.append(decision.pause)
                    self._due.append((self.delay, decision.pause, " ".join(self.words)))
            due, self._due = self._due, []
            for frames, pause, text in due:
                if frames <= 0:
                    self.clocked.listener.interim_transcript(pause, text, covers_turn=True)
                else:
                    self._due.append((frames - 1, pause, text))
        if words:
            self.words.append(words)
        return out


def say(t: Transcriber, text: str, seconds: float) -> list:
    t.words.append(text)
    return t.play(speech(seconds))


def ended_after_speech_ms(c: Clocked, out: list) -> float:
    (ended,) = of(out, TurnEnded)
    u = ended.utterance
    return round((u.turn_ended_at - u.speech_ended_at) * 1000)


def test_a_finished_sentence_ends_the_turn_after_the_shortest_pause():
    c = make(end_of_turn=LEXICAL)
    t = Transcriber(c, [])
    out = say(t, "What time do you open tomorrow?", 1.0) + t.play(silence(2.5))
    assert ended_after_speech_ms(c, out) == 200
    (ended,) = of(out, TurnEnded)
    assert ended.transcript == "What time do you open tomorrow?"
    assert ended.reading is not None and ended.reading.verdict == "complete"


def test_an_unfinished_sentence_keeps_listening_and_the_rest_joins_the_turn():
    c = make(end_of_turn=LEXICAL)
    t = Transcriber(c, [])
    out = say(t, "I'd like to book an appointment for", 1.2)
    out += t.play(silence(1.0))  # a 1 s pause after "for": not the end
    assert of(out, TurnEnded) == []
    assert c.listener.waiting_on_unfinished and c.listener.person_speaking
    out += say(t, "next Tuesday.", 0.6) + t.play(silence(2.5))
    (ended,) = of(out, TurnEnded)
    assert ended.utterance.duration_s > 2.5  # both halves, one turn
    assert ended.transcript == "I'd like to book an appointment for next Tuesday."
    assert ended_after_speech_ms(c, out) == 200


def test_an_unfinished_sentence_ends_at_the_longest_wait():
    c = make(end_of_turn=LEXICAL)
    t = Transcriber(c, [])
    out = say(t, "so my number is", 1.0) + t.play(silence(3.0))
    assert ended_after_speech_ms(c, out) == 1800


def test_no_words_yet_waits_the_default_pause():
    c = make(end_of_turn=LEXICAL)
    out = c.play(speech(1.0) + silence(2.5))  # nobody transcribes
    assert ended_after_speech_ms(c, out) == 500
    (ended,) = of(out, TurnEnded)
    assert ended.transcript is None and ended.reading is None


def test_a_late_transcript_ends_the_turn_as_soon_as_it_arrives():
    c = make(end_of_turn=LEXICAL)
    t = Transcriber(c, [], delay_frames=10)  # 200 ms after the pause began
    out = say(t, "Can I pay by card?", 1.0) + t.play(silence(2.5))
    # Asked at 100 ms of silence, answered 200 ms later: the turn ends then.
    assert 280 <= ended_after_speech_ms(c, out) <= 320


class SlowTranscriber(Transcriber):
    """Says that each transcript is on its way, as InterimTranscripts does."""

    def play(self, pcm: bytes, words: str = "") -> list:
        out = []
        for i in range(0, len(pcm), FRAME):
            frame_out = super().play(pcm[i : i + FRAME])
            for decision in frame_out:
                if isinstance(decision, PauseHeard):
                    self.clocked.listener.transcript_requested(decision.pause)
            out += frame_out
        return out


def test_an_unfinished_sentence_is_not_cut_while_its_words_are_on_their_way():
    c = make(end_of_turn=LEXICAL)
    t = SlowTranscriber(c, [], delay_frames=30)  # the words come 600 ms after the pause
    out = say(t, "I'd like to book an appointment for", 1.2) + t.play(silence(1.0))
    assert of(out, TurnEnded) == []  # not cut at the default 500 ms
    out += say(t, "next Tuesday.", 0.6) + t.play(silence(2.5))
    (ended,) = of(out, TurnEnded)
    assert ended.transcript == "I'd like to book an appointment for next Tuesday."


def test_a_finished_sentence_whose_words_are_late_ends_when_they_come():
    c = make(end_of_turn=LEXICAL)
    t = SlowTranscriber(c, [], delay_frames=30)
    out = say(t, "Can I pay by card?", 1.0) + t.play(silence(2.5))
    assert 660 <= ended_after_speech_ms(c, out) <= 720


def test_a_transcript_that_will_not_come_leaves_the_default_wait():
    c = make(end_of_turn=LEXICAL)
    out = c.play(speech(1.0) + silence(0.1))
    (heard,) = of(out, PauseHeard)
    c.listener.transcript_requested(heard.pause)
    out = c.play(silence(0.5))
    assert of(out, TurnEnded) == []  # still waiting for the words at 600 ms
    c.listener.transcript_missing(heard.pause)
    (ended,) = of(c.play(silence(0.04)), TurnEnded)
    assert ended.transcript is None


def test_words_from_before_the_person_went_on_are_not_the_turns():
    c = make(end_of_turn=LEXICAL)
    t = Transcriber(c, [])
    out = say(t, "Hello.", 0.6) + t.play(silence(0.06))  # too short to be a pause
    out += say(t, "I need", 0.5) + t.play(silence(0.18))  # a pause; "I need" goes on
    out += say(t, "a taxi to the airport", 1.0) + t.play(silence(2.5))
    (ended,) = of(out, TurnEnded)
    assert ended.transcript == "Hello. I need a taxi to the airport"
    assert len(t.asked) == 2


def test_a_stale_transcript_is_refused():
    c = make(end_of_turn=LEXICAL)
    out = c.play(speech(1.0) + silence(0.3))
    (heard,) = of(out, PauseHeard)
    c.play(speech(0.3))  # the person went on
    assert c.listener.interim_transcript(heard.pause, "Thanks.", covers_turn=True) is False
    out = c.play(silence(2.5))
    (ended,) = of(out, TurnEnded)
    assert ended.transcript is None


def test_over_the_agent_the_pause_is_fixed_and_nothing_is_transcribed():
    c = make(end_of_turn=LEXICAL, barge_in_min_ms=2000)
    c.agent_has_floor = True
    out = c.play(speech(0.5) + silence(1.0))
    assert of(out, PauseHeard) == []
    (ignored,) = of(out, SpeechIgnored)
    assert ignored.reason == "over_agent"
    assert round((ignored.at - (T0 + 0.5)) * 1000) == 500


def test_a_blip_is_dropped_at_the_shortest_pause():
    c = make(end_of_turn=LEXICAL, min_speech_ms=250)
    out = c.play(speech(0.12) + silence(1.0))
    (dropped,) = of(out, SpeechIgnored)
    assert dropped.reason == "too_short"
    assert round((dropped.at - (T0 + 0.12)) * 1000) == 200


# ---- interruptions like a person: hold, then cut or go on ------------------------------


def test_speech_over_the_agent_holds_it_then_cuts_it_at_the_confirmation():
    c = make(barge_in_min_ms=200)
    c.listener._barge_in_confirm_ms = 800  # as Listener(barge_in_confirm_ms=800)
    c.agent_has_floor = True
    out = c.play(speech(1.2))
    (hold,) = of(out, Hold)
    (barge,) = of(out, BargeIn)
    assert hold.at == pytest.approx(T0 + 0.2) and barge.at == pytest.approx(T0 + 0.8)
    assert of(out, FalseInterruption) == []


@pytest.mark.parametrize("pause_s", [0.3, 1.0])
def test_a_backchannel_over_the_agent_is_held_then_released(pause_s: float):
    c = Clocked(
        Listener(
            SegmenterConfig(),
            barge_in_min_ms=200,
            barge_in_confirm_ms=800,
            end_of_turn=LEXICAL,
            is_speech=loud,
        )
    )
    c.agent_has_floor = True
    out = c.play(speech(0.44) + silence(pause_s))  # "mm-hmm"
    assert [type(d) for d in out if not isinstance(d, PersonStarted)][:2] == [
        Hold,
        FalseInterruption,
    ]
    (release,) = of(out, FalseInterruption)
    # Released once the pause reaches the shortest end-of-turn wait.
    assert round((release.at - (T0 + 0.44)) * 1000) == LEXICAL.min_wait_ms
    assert of(out, BargeIn) == [] and of(out, TurnEnded) == []


def test_without_a_confirmation_the_minimum_cuts_at_once():
    c = make(barge_in_min_ms=300)  # barge_in_confirm_ms unset: the old rule
    c.agent_has_floor = True
    out = c.play(speech(1.0))
    assert of(out, Hold) == [] and len(of(out, BargeIn)) == 1
