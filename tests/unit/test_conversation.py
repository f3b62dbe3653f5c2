"""The conversation: one turn at a time, a new turn or interrupt() cuts the
running one short, a crashing turn leaves it usable, aclose() leaves nothing.

The policy of tests/integration/test_bargein.py (a cut reply is marked
interrupted and the history keeps what was heard) without WebRTC.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from media_server import faults
from media_server.agents import BUILTIN_AGENTS
from media_server.conversation import Conversation
from media_server.deadlines import StageDeadlines
from media_server.metrics import Metrics
from media_server.turn import TurnContext
from media_server.types import Utterance
from tests.audio_fixtures import speech_like
from tests.fakes.engines import FakeLLM, FakeSTT, FakeTTS, fake_providers, hang
from tests.fakes.pipeline import Playback, Sent, play_frames, turn_context, wait_until

AGENT = BUILTIN_AGENTS["sales"]
DEADLINES = StageDeadlines(stt_s=5.0, llm_s=5.0, tts_s=5.0)
LONG_REPLY = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 6))
SHORT_REPLY = "Sure, go ahead."


@dataclass
class Rig:
    conversation: Conversation
    ctx: TurnContext
    metrics: Metrics
    sent: Sent
    llm: FakeLLM
    tts: FakeTTS
    done: list[int]

    def turns(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "voice_agent_turns_total", {"outcome": outcome}
        )
        return value or 0.0

    @property
    def history(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.ctx.history.messages("") if m.role != "system"]

    async def finished(self, turn_id: int) -> dict:
        """The turn's metrics, once the turn (and its task) is over."""
        metrics = await self.sent.wait_for("turn_metrics", turn_id=turn_id)
        await wait_until(lambda: not self.conversation.busy)
        return metrics


def rig(
    *, llm: FakeLLM | None = None, tts: FakeTTS | None = None, stt: FakeSTT | None = None
) -> Rig:
    llm, tts = llm or FakeLLM(SHORT_REPLY), tts or FakeTTS()
    providers = fake_providers(stt or FakeSTT(), llm, tts)
    sent = Sent()
    ctx = turn_context(providers, agent=AGENT, deadlines=DEADLINES, send=sent)
    metrics = Metrics()
    done: list[int] = []
    conversation = Conversation(
        ctx, metrics, label="test", on_turn_done=lambda: done.append(len(done) + 1)
    )
    return Rig(conversation, ctx, metrics, sent, llm, tts, done)


class CrashingLLM(FakeLLM):
    """A language model with a bug on its first call: a plain exception."""

    crashed = False

    def stream_reply(self, messages, options):
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("a bug, not a provider failure")
        return super().stream_reply(messages, options)


# ---- a new turn cuts the running one short -------------------------------------------


async def test_a_new_turn_interrupts_a_reply_in_progress() -> None:
    r = rig(llm=FakeLLM([LONG_REPLY, SHORT_REPLY]), tts=FakeTTS(audio_ms=1000))
    conversation = r.conversation
    conversation.start(text="Tell me everything")
    assert conversation.busy and conversation.phase == "processing"
    # The whole reply is synthesized and queued; the person hears 1.2 s of it.
    await wait_until(lambda: len(r.tts.calls) == 5 and r.tts.calls[-1].outcome == "done")
    await play_frames(r.ctx.speaker, 60)
    assert conversation.phase == "speaking"

    conversation.start(text="Wait, a question")
    assert r.ctx.speaker.queued_samples == 0  # the old reply stops at once
    assert r.turns("interrupted") == 1
    cut = r.sent.of("llm_response", interrupted=True)
    assert len(cut) == 1 and cut[0]["turn_id"] == 1 and cut[0]["reason"] == "new_turn"
    heard = cut[0]["text"]
    assert heard.startswith("This is sentence number 1 of a long answer. This")
    assert heard.endswith("…")
    [cut_metrics] = r.sent.of("turn_metrics", turn_id=1)
    assert cut_metrics["interrupted"] is True and "total_ms" not in cut_metrics

    async with Playback(r.ctx.speaker):
        metrics = await r.finished(2)
    assert "interrupted" not in metrics
    assert r.turns("completed") == 1
    names = r.sent.names()
    assert names.index("turn_metrics") < names.index("transcription", 1)  # turn 1 is over first
    # The next request carries what was heard, not the reply the model wrote.
    assert [(m.role, m.content) for m in r.llm.messages[1][1:]] == [
        ("user", "Tell me everything"),
        ("assistant", heard),
        ("user", "Wait, a question"),
    ]
    assert r.history[-1] == ("assistant", SHORT_REPLY)
    assert r.done == [1, 2]  # both turns' tasks ended and said so
    assert r.sent.of("error") == []


async def test_a_turn_cut_before_its_reply_started_says_nothing_of_it() -> None:
    r = rig(llm=FakeLLM(SHORT_REPLY, faults=hang(on=1)))
    conversation = r.conversation
    conversation.start(text="Hello?")
    await wait_until(lambda: len(r.llm.calls) == 1)
    conversation.start(text="Hello again?")

    assert r.turns("interrupted") == 1
    async with Playback(r.ctx.speaker):
        await r.finished(2)
    assert r.sent.of("llm_response", interrupted=True) == []
    assert r.sent.of("turn_metrics", turn_id=1) == []
    assert r.llm.calls[0].outcome == "cancelled"
    assert [e["turn_id"] for e in r.sent.of("transcription")] == [1, 2]
    assert r.done == [1, 2]


async def test_interrupt_stops_the_turn_and_says_why() -> None:
    r = rig(llm=FakeLLM(LONG_REPLY), tts=FakeTTS(audio_ms=1000))
    conversation = r.conversation
    conversation.start(text="Tell me everything")
    await wait_until(lambda: r.tts.calls and r.tts.calls[0].outcome == "done")
    await play_frames(r.ctx.speaker, 10)

    assert conversation.interrupt("client") is True
    assert not conversation.busy and conversation.phase is None
    assert r.ctx.speaker.queued_samples == 0
    [cut] = r.sent.of("llm_response", interrupted=True)
    assert cut["reason"] == "client"
    await wait_until(lambda: r.done == [1])
    assert conversation.interrupt("client") is False  # nothing left to stop
    assert r.turns("interrupted") == 1


async def test_interrupt_when_idle_does_nothing() -> None:
    r = rig()
    assert r.conversation.interrupt("client") is False
    async with Playback(r.ctx.speaker):
        r.conversation.start(text="Hi")
        await r.finished(1)
    assert r.conversation.interrupt("client") is False
    assert r.turns("interrupted") == 0 and r.turns("completed") == 1
    assert r.sent.of("llm_response", interrupted=True) == []


# ---- a bug in a turn --------------------------------------------------------------------


async def test_a_crashing_turn_is_one_internal_error_and_the_next_turn_works() -> None:
    r = rig(llm=CrashingLLM(SHORT_REPLY))
    async with Playback(r.ctx.speaker):
        r.conversation.start(text="Hi")
        await wait_until(lambda: r.done == [1])
        assert not r.conversation.busy
        [error] = r.sent.of("error")
        assert error["code"] == "internal"
        assert error["message"] == faults.INTERNAL_ERROR_MESSAGE
        assert r.sent.of("turn_metrics") == []

        r.conversation.start(text="Hi again")
        await r.finished(2)
    assert len(r.sent.of("error")) == 1
    assert r.sent.of("llm_response", is_final=True, turn_id=2)[0]["text"] == SHORT_REPLY
    assert r.turns("completed") == 1
    assert r.done == [1, 2]


# ---- closing -------------------------------------------------------------------------------


async def test_aclose_waits_for_every_cut_turn_and_start_after_it_does_nothing() -> None:
    r = rig(llm=FakeLLM(SHORT_REPLY, faults=hang()))
    conversation = r.conversation
    before = asyncio.all_tasks()
    conversation.start(text="One")
    await wait_until(lambda: len(r.llm.calls) == 1)
    conversation.start(text="Two")  # turn 1 is cut and may not have finished yet
    await wait_until(lambda: len(r.llm.calls) == 2)

    await conversation.aclose()
    assert asyncio.all_tasks() == before  # no turn outlives the conversation
    assert [c.outcome for c in r.llm.calls] == ["cancelled", "cancelled"]
    assert not conversation.busy
    assert r.turns("interrupted") == 2
    assert r.done == [1, 2]

    stream = FakeSTT(streaming=True).open_stream()
    assert stream is not None
    sent_before = len(r.sent.raw)
    conversation.start(utterance=Utterance(speech_like(0.3)), stt_stream=stream)
    assert stream.cancelled  # the listener handed it over: it must not leak
    assert not conversation.busy and asyncio.all_tasks() == before
    conversation.start(text="Three")
    assert not conversation.busy and len(r.llm.calls) == 2
    assert len(r.sent.raw) == sent_before
    await conversation.aclose()  # idempotent


@pytest.mark.parametrize("turns", [0, 1])
async def test_aclose_of_an_idle_conversation(turns: int) -> None:
    r = rig()
    async with Playback(r.ctx.speaker):
        for n in range(1, turns + 1):
            r.conversation.start(text="Hi")
            await r.finished(n)
    await r.conversation.aclose()
    assert r.turns("interrupted") == 0
    assert r.sent.of("llm_response", interrupted=True) == []


# ---- a turn cut before its task began ----------------------------------------------------------


async def test_a_turn_cut_before_it_began_gives_back_its_streaming_transcript() -> None:
    # The listener hands over a turn and, in the same loop iteration, the page
    # sends text: the first turn is cut before its task ever ran.
    r = rig()
    stream = FakeSTT(streaming=True).open_stream()
    assert stream is not None
    r.conversation.start(utterance=Utterance(speech_like(0.3)), stt_stream=stream)
    r.conversation.start(text="Typed at the same moment")
    async with Playback(r.ctx.speaker):
        await r.finished(2)
    assert stream.cancelled  # a streaming decoder is a pooled resource: not leaked
    assert r.turns("interrupted") == 1 and r.turns("completed") == 1
    assert r.done == [1, 2]


async def test_aclose_right_after_start_gives_back_its_streaming_transcript() -> None:
    r = rig()
    stream = FakeSTT(streaming=True).open_stream()
    assert stream is not None
    r.conversation.start(utterance=Utterance(speech_like(0.3)), stt_stream=stream)
    await r.conversation.aclose()
    assert stream.cancelled
    assert r.done == [1]


# ---- talking on before the agent says a word: the same turn ---------------------------


def spoken(seconds: float = 0.5) -> Utterance:
    return Utterance(pcm=speech_like(seconds), speech_ended_at=1.0, turn_ended_at=1.2)


def users(r: Rig) -> list[str]:
    return [text for role, text in r.history if role == "user"]


async def test_talking_on_before_the_reply_is_heard_continues_the_same_turn() -> None:
    stt = FakeSTT(["My flight got cancelled", "and I need a hotel tonight"])
    llm = FakeLLM([SHORT_REPLY, SHORT_REPLY], delay=0.3)  # still thinking when they go on
    r = rig(stt=stt, llm=llm)
    r.conversation.start(utterance=spoken())
    await r.sent.wait_for("transcription", turn_id=1)
    assert r.conversation.continue_turn() is True
    assert r.turns("continued") == 1 and r.turns("interrupted") == 0
    assert not r.sent.of("llm_response") and not r.sent.of("turn_metrics")
    assert users(r) == []  # taken back: it comes again, whole
    assert r.conversation.next_turn_id == 1  # the page's bubble for it stays
    r.conversation.start(utterance=spoken())
    async with Playback(r.ctx.speaker):
        await r.finished(1)
    whole = "My flight got cancelled and I need a hotel tonight"
    assert [e["text"] for e in r.sent.of("transcription")][-1] == whole
    assert users(r) == [whole]
    assert [m.content for m in llm.messages[-1] if m.role == "user"] == [whole]


async def test_words_not_in_yet_are_transcribed_with_what_followed() -> None:
    stt = FakeSTT(["never finished", "My flight got cancelled and I need a hotel"], delay=0.2)
    r = rig(stt=stt)
    first = spoken(0.4)
    r.conversation.start(utterance=first)
    await asyncio.sleep(0.05)  # still transcribing the first part
    assert r.conversation.continue_turn() is True
    then = spoken(0.6)
    r.conversation.start(utterance=then)
    async with Playback(r.ctx.speaker):
        await r.finished(1)
    assert len(stt.utterances[-1].pcm) == len(first.pcm) + len(then.pcm)
    assert users(r) == ["My flight got cancelled and I need a hotel"]


async def test_a_blip_after_a_continued_turn_gives_it_back_as_it_was() -> None:
    stt = FakeSTT(["Can I pay by card?"])
    r = rig(stt=stt, llm=FakeLLM([SHORT_REPLY, SHORT_REPLY], delay=0.3))
    r.conversation.start(utterance=spoken())
    await r.sent.wait_for("transcription", turn_id=1)
    assert r.conversation.continue_turn()
    r.conversation.resume_carried()  # what followed was a cough
    async with Playback(r.ctx.speaker):
        await r.finished(1)
    assert users(r) == ["Can I pay by card?"]
    assert len(stt.utterances) == 1  # its words were kept, not transcribed again


async def test_only_a_spoken_turn_not_yet_heard_is_continued() -> None:
    r = rig()
    r.conversation.start(text="Typed, not spoken")
    await asyncio.sleep(0)
    assert r.conversation.continue_turn() is False
    r.conversation.interrupt("client")
    r2 = rig(llm=FakeLLM(LONG_REPLY))
    r2.conversation.start(utterance=spoken())
    await wait_until(lambda: r2.ctx.speaker.queued_samples > 0)
    await play_frames(r2.ctx.speaker, 5)
    assert r2.conversation.continue_turn() is False  # they heard it: a barge-in
    assert r2.conversation.busy
    await r2.conversation.aclose()
    await r.conversation.aclose()
