"""Barge-in: talking over the agent (or pressing stop) cuts the reply at once,
and the history keeps only what the person heard."""

from __future__ import annotations

import asyncio

import pytest

from media_server.providers import build_providers
from tests.conftest import make_settings, speech_48k
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.mp3_fixture import mp3_bytes
from tests.fakes.openai_fake import start_openai_fake
from tests.voice_client import VoiceClient

LONG_REPLY = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 13))


@pytest.fixture
async def agent():
    openai = await start_openai_fake(transcript="", reply=LONG_REPLY, chunk_delay_s=0.005)
    # Each sentence is spoken as 1.5 s of voiced tone: the reply lasts ~18 s.
    eleven = await start_elevenlabs_fake(audio=mp3_bytes(1.5))
    providers = build_providers(
        make_settings(
            openai_api_key="sk-test",
            openai_base_url=openai.base_url,
            elevenlabs_api_key="el-test",
            elevenlabs_base_url=eleven.base_url,
        )
    )
    yield openai, eleven, providers
    await providers.close()
    await openai.close()
    await eleven.close()


async def _start_long_reply(client: VoiceClient) -> int:
    since = len(client.events)
    client.send({"type": "text_input", "text": "Tell me everything"})
    await client.wait_for("status_update", since=since, status="speaking", timeout=20)
    await asyncio.sleep(1.0)  # the person hears a bit of it
    return since


def _assistant_history(openai) -> list[str]:
    chats = [r for r in openai.requests if r.path == "/v1/chat/completions"]
    return [m["content"] for m in chats[-1].json["messages"] if m["role"] == "assistant"]


async def test_speaking_over_the_agent_stops_it_and_history_keeps_the_heard_part(
    agent, server_factory
):
    openai, _, providers = agent
    server = await server_factory(providers=providers, barge_in_min_ms=200)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        since = await _start_long_reply(client)
        speak = asyncio.create_task(client.say(speech_48k("wait, stop, I have a question")))
        cut = await client.wait_for("llm_response", since=since, interrupted=True, timeout=10)
        cut_at = client.event_times[client.events.index(cut)]
        await client.wait_for("status_update", since=since, status="listening", timeout=5)
        types = client.types(since)
        assert types.index("status:speaking") < types.index("status:listening")
        heard = cut["text"]
        assert heard and LONG_REPLY.startswith(heard.rstrip("…").rsplit(" ", 1)[0])
        assert len(heard) < len(LONG_REPLY) / 2
        await speak
        # The barge-in utterance transcribes to "" (the fake says so): no new reply.
        await asyncio.sleep(1.5)
        # Reply audio stopped: nothing voiced arrives once the jitter buffer drained.
        assert client.voiced_frames_after(cut_at + 0.5) == 0
        # The cut turn still reports how fast it started talking, marked as cut.
        [metrics] = [e for e in client.events[since:] if e["type"] == "turn_metrics"]
        assert metrics["turn_id"] == cut["turn_id"] and metrics["interrupted"] is True
        assert metrics["first_token_ms"] <= metrics["first_audio_ms"]
        assert "total_ms" not in metrics  # it never finished

        # The next turn's request carries only what was heard, not the whole reply.
        openai.knobs.reply = "Sure, go ahead."
        since = len(client.events)
        client.send({"type": "text_input", "text": "What was that?"})
        await client.wait_for("turn_metrics", since=since, timeout=20)
        history = _assistant_history(openai)
        assert history[0] == heard and history[0] != LONG_REPLY
    finally:
        await client.close()


# Speech over the agent that is too short to take the floor, and the page's
# interrupt message, are the listener's and the session's unit tests
# (tests/unit/test_listener.py, tests/unit/test_session.py).
