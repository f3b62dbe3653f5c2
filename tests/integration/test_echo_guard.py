"""The echo guard over WebRTC: a client whose microphone hears the agent's
own voice (a speakerphone without echo cancellation) does not interrupt the
agent, while a person talking over it still does."""

from __future__ import annotations

import asyncio

import pytest

from media_server.providers import build_providers
from tests.audio_fixtures import speech_48k
from tests.conftest import make_settings
from tests.echo_room import RoomMic
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.openai_fake import start_openai_fake
from tests.voice_client import VoiceClient

REPLY = (
    "Your appointment is on Tuesday at ten in the morning. "
    "Please bring your insurance card and arrive a little early."
)


@pytest.fixture
async def agent():
    openai = await start_openai_fake(transcript="", reply=REPLY, chunk_delay_s=0.005)
    eleven = await start_elevenlabs_fake(speak_text=True)  # each sentence, spoken by espeak
    providers = build_providers(
        make_settings(
            openai_api_key="sk-test",
            openai_base_url=openai.base_url,
            elevenlabs_api_key="el-test",
            elevenlabs_base_url=eleven.base_url,
        )
    )
    yield providers
    await providers.close()
    await openai.close()
    await eleven.close()


async def _reply_with_echo(server, *, talk_over: bool) -> dict:
    """A reply played into a room that echoes it at -6 dB, 60 ms late; the
    turn's metrics (``interrupted`` says if it was cut)."""
    client = VoiceClient(server.base_url)
    room = RoomMic(level_db=-6, delay_ms=60)
    client.mic = room
    client.on_audio = room.hear
    try:
        await client.connect("receptionist")
        since = len(client.events)
        client.send({"type": "text_input", "text": "When is my appointment?"})
        await client.wait_for("status_update", since=since, status="speaking", timeout=20)
        if talk_over:
            await asyncio.sleep(2.0)
            await room.say(speech_48k("Wait, stop, I have a question about my bill."))
        return await client.wait_for("turn_metrics", since=since, timeout=30)
    finally:
        await client.close()


@pytest.mark.parametrize(("echo_guard", "interrupted"), [("off", True), ("aec", False)])
async def test_the_agents_own_echo_interrupts_it_only_without_the_guard(
    agent, server_factory, echo_guard: str, interrupted: bool
):
    server = await server_factory(providers=agent, echo_guard=echo_guard)
    metrics = await _reply_with_echo(server, talk_over=False)
    assert metrics.get("interrupted", False) is interrupted


async def test_a_person_talking_over_the_echo_still_interrupts(agent, server_factory):
    server = await server_factory(providers=agent, echo_guard="aec")
    metrics = await _reply_with_echo(server, talk_over=True)
    assert metrics.get("interrupted", False) is True
