"""Interim transcripts: where they come from, how many, and who hears them."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from media_server.interim import InterimTranscripts
from media_server.listening.decisions import PauseHeard, TurnEnded
from media_server.listening.end_of_turn import EndOfTurn
from media_server.listening.listener import Listener
from media_server.listening.segmenter import SegmenterConfig
from media_server.metrics import Metrics
from media_server.types import ProviderError
from tests.audio_fixtures import silence, sine
from tests.fakes.engines import FakeSTT, fail

FRAME = 640


def loud(frame: bytes) -> bool:
    return int(np.max(np.abs(np.frombuffer(frame, "<i2").astype(np.int32)))) > 5000


class NextTurn:
    """What interim transcripts read of the conversation: the next turn's id
    and the words of a turn it continues."""

    next_turn_id = 7
    carried_text = ""


class Rig:
    def __init__(self, stt: FakeSTT, max_speculative: int = 2) -> None:
        self.stt = stt
        self.metrics = Metrics()
        self.sent: list[dict] = []
        self.heard = 0
        self.listener = Listener(
            SegmenterConfig(),
            barge_in_min_ms=200,
            end_of_turn=EndOfTurn("lexical"),
            open_stream=stt.open_stream,
            is_speech=loud,
        )
        self.interim = InterimTranscripts(
            stt,
            self.listener,
            self.metrics,
            send=lambda m: self.sent.append(json.loads(m)),
            conversation=NextTurn(),  # type: ignore[arg-type]
            on_heard=self._on_heard,
            timeout_s=1.0,
            max_speculative=max_speculative,
            label="test",
        )
        self.now = 100.0
        self.decisions: list = []

    def _on_heard(self) -> None:
        self.heard += 1

    async def play(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), FRAME):
            self.now += 0.02
            for d in self.listener.feed(pcm[i : i + FRAME], self.now, agent_has_floor=False):
                self.decisions.append(d)
                if isinstance(d, PauseHeard):
                    self.interim.on_pause(d)
                elif isinstance(d, TurnEnded):
                    self.interim.turn_over()
            await asyncio.sleep(0)  # let a transcript come back between frames

    def speculative(self) -> float:
        return self.metrics.speculative_stt._value.get()  # type: ignore[attr-defined]


def speech(seconds: float) -> bytes:
    return sine(seconds, 220.0)


async def test_a_batch_engine_is_asked_at_each_pause_up_to_the_bound():
    rig = Rig(FakeSTT(["I'd like to", "I'd like to book a", "never asked"]), max_speculative=2)
    for _ in range(3):
        await rig.play(speech(0.5) + silence(0.4))  # three pauses in one turn
    await rig.play(silence(2.0))
    assert len(rig.stt.utterances) == 2 and rig.speculative() == 2
    interims = [e for e in rig.sent if e["type"] == "transcription"]
    assert [e["text"] for e in interims] == ["I'd like to", "I'd like to book a"]
    assert all(e["is_final"] is False and e["turn_id"] == 7 for e in interims)
    (ended,) = [d for d in rig.decisions if isinstance(d, TurnEnded)]
    assert ended.transcript is None  # the last pause went unheard: the turn transcribes
    await rig.interim.aclose()


async def test_a_streaming_engine_is_read_not_asked_again():
    stt = FakeSTT("What time do you open", streaming=True)
    rig = Rig(stt)
    await rig.play(speech(0.8) + silence(1.0))
    assert stt.utterances == [] and rig.speculative() == 0
    (stream,) = stt.streams
    assert stream.interims == 1
    (ended,) = [d for d in rig.decisions if isinstance(d, TurnEnded)]
    assert ended.stt_stream is stream and ended.transcript is None  # finish() gives the final
    await rig.interim.aclose()


async def test_a_rejected_key_stops_speculating_and_says_nothing():
    stt = FakeSTT("unused", faults=[fail(ProviderError("stt", "auth"), on=None)])
    rig = Rig(stt, max_speculative=5)
    for _ in range(3):
        await rig.play(speech(0.5) + silence(0.4))
    await asyncio.sleep(0.01)
    assert len(stt.utterances) == 1  # one billed request, not five
    assert rig.sent == []  # the turn reports the failure, not the speculation
    await rig.interim.aclose()


async def test_an_answer_for_a_pause_the_person_talked_past_is_dropped():
    stt = FakeSTT("Hello", delay=0.2)
    rig = Rig(stt)
    await rig.play(speech(0.5) + silence(0.14))  # a pause: asked
    await rig.play(speech(0.5))  # went on before the answer
    await asyncio.sleep(0.3)
    assert rig.sent == [] and rig.heard == 0
    await rig.interim.aclose()


async def test_a_failed_transcript_lets_the_pause_end_at_the_default_wait():
    # While a transcript is on its way the pause waits for it; once it has
    # failed, the turn ends at the default wait instead of the longest one.
    stt = FakeSTT("unused", faults=[fail(ProviderError("stt", "timeout"), on=None)])
    rig = Rig(stt)
    await rig.play(speech(1.0) + silence(2.5))
    (ended,) = [d for d in rig.decisions if isinstance(d, TurnEnded)]
    waited_ms = (ended.utterance.turn_ended_at - ended.utterance.speech_ended_at) * 1000
    assert waited_ms < rig.listener.end_of_turn.max_wait_ms - 100
    await rig.interim.aclose()
