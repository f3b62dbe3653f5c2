"""The end of turn that reads the sentence, over WebRTC with the cloud fakes.

The fake transcriber answers from the audio it is sent (how long it is), as a
real one would: the first half of the sentence before the pause, the whole
sentence after it. The policy's details are unit-tested (test_listener.py,
test_completion.py); these check the whole path: speculative transcripts,
one turn for one sentence, the page's interim words and "still listening".
"""

from __future__ import annotations

import pytest

from tests.conftest import make_settings, speech_48k
from tests.fakes.openai_fake import start_openai_fake
from tests.voice_client import VoiceClient

FIRST_HALF = "I'd like to book an appointment for"
WHOLE = "I'd like to book an appointment for next Tuesday."
REPLY = "Next Tuesday works. What time suits you?"


def silence_48k(seconds: float) -> bytes:
    return bytes(int(48000 * seconds) * 2)


@pytest.fixture
async def openai():
    fake = await start_openai_fake(reply=REPLY, api_key="sk-test")
    yield fake
    await fake.close()


def transcriptions(fake) -> list:
    return [r for r in fake.requests if r.path == "/v1/audio/transcriptions"]


def chat_users(fake) -> list[list[str]]:
    return [
        [m["content"] for m in r.json["messages"] if m["role"] == "user"]
        for r in fake.requests
        if r.path == "/v1/chat/completions"
    ]


async def cloud_server(server_factory, fake, **overrides):
    from media_server.providers import build_providers

    settings = dict(openai_api_key="sk-test", openai_base_url=fake.base_url, tts_provider="openai")
    providers = build_providers(make_settings(**settings))
    server = await server_factory(providers=providers, **settings, **overrides)
    return server, providers


async def test_a_pause_mid_sentence_is_not_the_end_of_the_turn(leak_check, openai, server_factory):
    first = speech_48k(FIRST_HALF)
    first_s = len(first) / 96000

    def transcribe(request) -> str:
        params = request.files["file"].wav_params
        heard_s = params.nframes / params.framerate
        return FIRST_HALF if heard_s < first_s + 0.5 else WHOLE

    openai.knobs.transcript = transcribe
    server, providers = await cloud_server(server_factory, openai)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        since = len(client.events)
        await client.say(first + silence_48k(1.0) + speech_48k("next Tuesday"))
        await client.wait_for("turn_metrics", since=since, timeout=30)
        events = client.events[since:]
        # One turn, with every word of it.
        assert [e["type"] for e in events].count("turn_metrics") == 1
        finals = [e for e in events if e["type"] == "transcription" and e["is_final"]]
        assert [e["text"] for e in finals] == [WHOLE]
        # The model never saw half the turn. (A reply started early on the whole
        # turn is dropped if the VAD hears the pause resume for a frame, and
        # asked again at the next pause: so one request or more, each whole.)
        asked = chat_users(openai)
        assert asked and all(users == [WHOLE] for users in asked), asked
        # The page saw the words as they were heard, and the server waiting.
        interims = [e["text"] for e in events if e["type"] == "transcription" and not e["is_final"]]
        assert FIRST_HALF in interims
        statuses = [e["status"] for e in events if e["type"] == "status_update"]
        assert "still_listening" in statuses
        assert statuses.index("still_listening") < statuses.index("processing")
    finally:
        await client.close()
        await providers.close()


async def test_a_finished_question_is_answered_from_its_speculative_transcript(
    leak_check, openai, server_factory
):
    question = "What time do you open tomorrow?"
    openai.knobs.transcript = question
    server, providers = await cloud_server(server_factory, openai)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        since = len(client.events)
        await client.say(speech_48k(question) + silence_48k(0.8))
        metrics = await client.wait_for("turn_metrics", since=since, timeout=30)
        # Transcribed once, at the pause, and that transcript is the turn's.
        assert len(transcriptions(openai)) == 1
        assert chat_users(openai) == [[question]]
        assert "still_listening" not in client.types(since)
        # Committed at the shortest pause, not the default one.
        assert metrics["end_of_turn_wait_ms"] < make_settings().turn_silence_ms
    finally:
        await client.close()
        await providers.close()
