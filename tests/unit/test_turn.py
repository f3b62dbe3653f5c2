"""One turn, in process: fake engines, a real speaker on a fast clock, a real
history, and the events it sends.

The policy of tests/integration/test_voice_loop.py and test_faults.py (the
order of a turn's events, the retry rule, one clear error, the history
keeping what was heard) without WebRTC or HTTP, in milliseconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from media_server import faults
from media_server.agents import BUILTIN_AGENTS
from media_server.deadlines import StageDeadlines
from media_server.turn import Turn, TurnContext
from media_server.types import ProviderError, Utterance
from tests.audio_fixtures import speech_like
from tests.fakes.engines import FakeLLM, FakeSTT, FakeTTS, fail, fake_providers, hang
from tests.fakes.pipeline import Playback, Sent, play_frames, turn_context, wait_until

AGENT = BUILTIN_AGENTS["receptionist"]
DEADLINES = StageDeadlines(stt_s=1.0, llm_s=1.0, tts_s=1.0)
UTTERANCE = Utterance(speech_like(0.5))
REPLY = "Happy to help with that. What day suits you best? We open at nine."


@dataclass
class Rig:
    """A TurnContext of fakes and what it saw."""

    ctx: TurnContext
    sent: Sent
    stt: FakeSTT
    llm: FakeLLM
    tts: FakeTTS
    stage_results: list[tuple[str, ProviderError | None]] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)

    @property
    def history(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.ctx.history.messages("") if m.role != "system"]

    def turn(self, turn_id: int = 1, **kwargs) -> Turn:
        turn = Turn(self.ctx, turn_id, **kwargs)
        self.ctx.on_phase = lambda: self.phases.append(turn.phase)
        return turn

    async def run(self, turn: Turn):
        async with Playback(self.ctx.speaker):
            return await turn.run()


def rig(
    *,
    stt: FakeSTT | None = None,
    llm: FakeLLM | None = None,
    tts: FakeTTS | None = None,
    deadlines: StageDeadlines = DEADLINES,
) -> Rig:
    stt, llm, tts = stt or FakeSTT(), llm or FakeLLM(REPLY), tts or FakeTTS()
    providers = fake_providers(stt, llm, tts)
    sent = Sent()
    ctx = turn_context(providers, agent=AGENT, deadlines=deadlines, send=sent)
    r = Rig(ctx, sent, stt, llm, tts)
    ctx.on_stage_result = lambda stage, err: r.stage_results.append((stage, err))
    return r


def unavailable(stage, **kw) -> ProviderError:
    return ProviderError(stage, "unavailable", f"fake {stage} down", **kw)


# ---- a turn that completes ---------------------------------------------------------


async def test_text_turn_sends_its_events_in_order_and_keeps_the_reply() -> None:
    r = rig()
    result = await r.run(r.turn(7, text="Can I book for Friday?"))

    assert result.outcome == "completed"
    assert (result.transcript, result.reply) == ("Can I book for Friday?", REPLY)
    names = r.sent.names()
    assert names[0] == "transcription" and names[-1] == "turn_metrics", names
    replies = r.sent.of("llm_response")
    assert names[1 : 1 + len(replies)] == ["llm_response"] * len(replies)
    assert [e["is_final"] for e in replies] == [False] * (len(replies) - 1) + [True]
    assert len(replies) >= 2  # at least one partial before the final
    # Each partial is the reply so far: a growing prefix of the final text.
    texts = [e["text"] for e in replies]
    assert all(REPLY.startswith(t) for t in texts) and texts[-1] == REPLY
    assert texts == sorted(texts, key=len)
    assert {e["turn_id"] for e in r.sent.events} == {7}
    assert r.sent.of("transcription")[0]["text"] == "Can I book for Friday?"

    metrics = r.sent.of("turn_metrics")[0]
    assert "interrupted" not in metrics
    assert metrics["transcript_ms"] == 0.0
    assert metrics["first_token_ms"] <= metrics["first_audio_ms"] <= metrics["total_ms"]

    assert r.history == [("user", "Can I book for Friday?"), ("assistant", REPLY)]
    assert r.phases == ["generating_audio", "speaking"]  # from "processing"
    assert sorted(r.stage_results) == [("llm", None), ("tts", None)]
    # Every sentence was spoken, in order, and all of its audio was played.
    assert r.tts.texts == [
        "Happy to help with that.",
        "What day suits you best?",
        "We open at nine.",
    ]
    assert r.ctx.speaker.queued_samples == 0 and r.ctx.speaker.played_samples > 0


async def test_spoken_turn_transcribes_the_utterance_first() -> None:
    r = rig(stt=FakeSTT("What time do you open?"))
    result = await r.run(r.turn(utterance=UTTERANCE))

    assert result.outcome == "completed" and result.transcript == "What time do you open?"
    assert r.stt.utterances == [UTTERANCE]
    assert r.sent.names()[0] == "transcription"
    assert r.sent.of("transcription")[0]["text"] == "What time do you open?"
    assert r.stage_results[0] == ("stt", None)
    assert sorted(r.stage_results[1:]) == [("llm", None), ("tts", None)]
    # The model was asked with the transcript as the person's words.
    assert r.llm.messages[0][-1].content == "What time do you open?"
    assert r.history[0] == ("user", "What time do you open?")


async def test_empty_transcript_drops_the_turn_without_a_word() -> None:
    r = rig(stt=FakeSTT("   "))
    result = await r.run(r.turn(utterance=UTTERANCE))

    assert result.outcome == "dropped"
    assert r.sent.events == []  # no transcription, no reply, no metrics
    assert r.llm.calls == [] and r.tts.calls == []
    assert r.stage_results == [("stt", None)]
    assert r.history == [] and r.phases == []


async def test_streaming_transcript_is_finished_not_decoded_again() -> None:
    r = rig(stt=FakeSTT("Streamed words", streaming=True))
    stream = r.stt.open_stream()
    assert stream is not None
    stream.feed(UTTERANCE.pcm)
    result = await r.run(r.turn(utterance=UTTERANCE, stt_stream=stream))

    assert result.outcome == "completed" and result.transcript == "Streamed words"
    assert stream.finished and not stream.cancelled
    assert r.stt.utterances == []  # no batch transcribe
    assert r.stage_results[0] == ("stt", None)


async def test_failed_streaming_transcript_falls_back_to_the_whole_utterance() -> None:
    stt = FakeSTT(["lost", "Decoded again"], streaming=True, faults=fail(unavailable("stt"), on=1))
    r = rig(stt=stt)
    stream = stt.open_stream()
    assert stream is not None
    result = await r.run(r.turn(utterance=UTTERANCE, stt_stream=stream))

    assert result.outcome == "completed" and result.transcript == "Decoded again"
    assert stream.finished and stream.call.outcome == "failed"
    assert stt.utterances == [UTTERANCE]  # the whole utterance, decoded the usual way
    assert r.sent.of("error") == []
    assert r.stage_results[0] == ("stt", None)  # the fallback rescued the stage


async def test_stt_failure_is_one_error_and_no_reply() -> None:
    err = ProviderError("stt", "invalid", "fake stt: bad request")
    r = rig(stt=FakeSTT(faults=fail(err)))
    result = await r.run(r.turn(utterance=UTTERANCE))

    assert result.outcome == "error" and result.error is err
    assert len(r.stt.calls) == 1  # "invalid" is not retried
    assert r.llm.calls == []
    [error] = r.sent.of("error")
    assert error["code"] == "stt_invalid" and error["stage"] == "stt"
    assert error["message"] == faults.user_message(err)
    assert r.sent.of("transcription") == []
    assert r.stage_results == [("stt", err)]


# ---- deadlines and retries ------------------------------------------------------------


async def test_llm_first_token_timeout_is_retried_once_and_rescues_the_turn() -> None:
    r = rig(llm=FakeLLM(REPLY, faults=hang(on=1)), deadlines=StageDeadlines(1.0, 0.05, 1.0))
    result = await r.run(r.turn(text="Hello?"))

    assert result.outcome == "completed" and result.reply == REPLY
    assert [c.outcome for c in r.llm.calls] == ["cancelled", "done"]
    assert r.sent.of("error") == []
    assert r.sent.of("turn_metrics")[0]["first_token_ms"] >= 50  # it waited the deadline
    # The retry is inside the stage: one success is reported, no failure.
    assert sorted(r.stage_results) == [("llm", None), ("tts", None)]


async def test_llm_timeout_twice_is_one_timeout_error() -> None:
    r = rig(llm=FakeLLM(REPLY, faults=hang()), deadlines=StageDeadlines(1.0, 0.05, 1.0))
    result = await r.run(r.turn(text="Hello?"))

    assert result.outcome == "error" and result.error is not None
    assert result.error.kind == "timeout"
    assert len(r.llm.calls) == 2  # never a second retry
    [error] = r.sent.of("error")
    assert error["code"] == "llm_timeout" and error["retryable"] is True
    assert error["message"] == faults.user_message(result.error)
    assert r.tts.calls == []
    assert r.stage_results == [("llm", result.error)]


async def test_auth_error_is_not_retried_and_is_one_error_event() -> None:
    err = ProviderError("llm", "auth", "fake llm: 401", status=401)
    r = rig(llm=FakeLLM(REPLY, faults=fail(err)))
    result = await r.run(r.turn(text="Hello?"))

    assert result.outcome == "error" and result.error is err
    assert len(r.llm.calls) == 1
    [error] = r.sent.of("error")
    assert error["code"] == "llm_auth" and error["stage"] == "llm"
    assert error["retryable"] is False
    assert error["message"] == faults.user_message(err)
    assert "API key" in error["message"]
    assert r.sent.names() == ["transcription", "error", "turn_metrics"]
    assert r.stage_results == [("llm", err)]
    assert r.history == [("user", "Hello?")]  # nothing of a reply was heard


async def test_tts_failure_before_any_audio_is_retried() -> None:
    tts = FakeTTS(faults=fail(unavailable("tts", retry_after=0.01), on=1))
    r = rig(tts=tts)
    result = await r.run(r.turn(text="Hello?"))

    assert result.outcome == "completed"
    assert tts.texts[:2] == ["Happy to help with that."] * 2  # the same piece, again
    assert [c.outcome for c in tts.calls[:2]] == ["failed", "done"]
    assert r.sent.of("error") == []
    assert ("tts", None) in r.stage_results and all(e is None for _, e in r.stage_results)


async def test_tts_failure_after_audio_was_heard_is_not_retried() -> None:
    # The second piece fails; by then the first was synthesized and played.
    err = unavailable("tts", retry_after=0.01)
    tts = FakeTTS(delay=0.05, faults=fail(err, on=2))
    r = rig(tts=tts)
    result = await r.run(r.turn(text="Hello?"))

    assert result.outcome == "error" and result.error is err
    assert tts.texts == ["Happy to help with that.", "What day suits you best?"]
    [error] = r.sent.of("error")
    assert error["code"] == "tts_unavailable" and error["stage"] == "tts"
    assert error["message"] == faults.user_message(err)
    assert ("tts", err) in r.stage_results
    # The history keeps what was heard, not the reply the model wrote.
    assert r.history == [("user", "Hello?"), ("assistant", "Happy to help with that.")]
    assert r.ctx.speaker.queued_samples == 0  # nothing more is played


# ---- cut short ------------------------------------------------------------------------------


async def test_cancelled_turn_keeps_only_the_played_part_in_the_history() -> None:
    r = rig()
    speaker = r.ctx.speaker
    turn = r.turn(text="Tell me more")
    task = asyncio.create_task(turn.run())
    # Every piece is synthesized and queued (nobody is taking frames yet).
    await wait_until(lambda: len(r.tts.calls) == 3 and r.tts.calls[-1].outcome == "done")
    await play_frames(speaker, 15)  # the first piece (~10 frames) and half the second
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The cancel put in the history what was played: the first piece and the
    # share of the second that was played, not the reply the model wrote.
    [user, (role, heard)] = r.history
    assert user == ("user", "Tell me more") and role == "assistant"
    assert heard.startswith("Happy to help with that. What")
    assert heard.endswith("…") and heard != REPLY
    assert turn.record_heard() == heard  # once: asking again adds nothing
    assert len(r.history) == 2
    assert r.sent.of("turn_metrics") == []  # the conversation reports a cut turn
    assert r.phases == ["generating_audio", "speaking"]


async def test_turn_cancelled_before_any_audio_keeps_no_reply() -> None:
    r = rig(tts=FakeTTS(faults=hang()))
    turn = r.turn(text="Tell me more")
    task = asyncio.create_task(turn.run())
    await wait_until(lambda: len(r.tts.calls) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert r.history == [("user", "Tell me more")]
    assert r.tts.calls[0].outcome == "cancelled"
