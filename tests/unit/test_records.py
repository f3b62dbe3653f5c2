"""Conversation records: what each turn of a call leaves in the database
(completed and interrupted turns, tools, timings), the end of the call, and
who may read it."""

from __future__ import annotations

from pathlib import Path

from media_server.agents import BUILTIN_AGENTS
from media_server.conversation import Conversation
from media_server.deadlines import StageDeadlines
from media_server.metrics import Metrics
from media_server.store import Database
from media_server.store.records import SessionRecord, transcript
from media_server.tools.acting import key_hash
from tests.fakes.engines import FakeLLM, FakeTTS, fake_providers
from tests.fakes.pipeline import Playback, Sent, turn_context, wait_until

REPLY = "Sure. We are open from eight until six on weekdays. Anything else?"


async def test_a_calls_turns_are_recorded_and_read_back_with_its_key(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite:///{tmp_path}/agent.db")
    try:
        record = SessionRecord(db, "sess-1", "receptionist", key_hash("the-key"))
        sent = Sent()
        # Long audio per sentence: the second turn is cut while it speaks.
        providers = fake_providers(llm=FakeLLM(REPLY), tts=FakeTTS(audio_ms=4000))
        ctx = turn_context(
            providers,
            agent=BUILTIN_AGENTS["receptionist"],
            deadlines=StageDeadlines(5, 5, 5),
            send=sent,
        )
        ctx.on_turn_end = record.turn
        conversation = Conversation(ctx, Metrics(), label="test")
        async with Playback(ctx.speaker):
            conversation.start(text="When are you open?")
            await sent.wait_for("turn_metrics", timeout=20, turn_id=1)
            conversation.start(text="And on Saturday?")
            await wait_until(lambda: conversation.phase == "speaking", 10)  # turn 2 talks
            assert conversation.interrupt("barge_in")
            await conversation.aclose()
        await record.close("client_ended")

        assert await transcript(db, "sess-1", key_hash("wrong")) is None
        assert await transcript(db, "nope", key_hash("the-key")) is None
        got = await transcript(db, "sess-1", key_hash("the-key"))
        assert got is not None
        assert (got["agent_id"], got["end_reason"]) == ("receptionist", "client_ended")
        first, second = got["turns"]
        assert (first["turn_id"], first["outcome"], first["heard"], first["reply"]) == (
            1,
            "completed",
            "When are you open?",
            REPLY,
        )
        assert first["metrics"]["total_ms"] >= first["metrics"]["first_token_ms"]
        assert first["tools"] == []
        assert (second["outcome"], second["heard"]) == ("interrupted", "And on Saturday?")
        assert REPLY.startswith(second["reply"].rstrip("…"))  # what was heard of it
        # Read by an operator's token instead of the key: no key check.
        assert (await transcript(db, "sess-1", None))["id"] == "sess-1"
    finally:
        await db.close()
