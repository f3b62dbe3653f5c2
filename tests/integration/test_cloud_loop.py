"""Full turns on the cloud providers (OpenAI STT and chat, ElevenLabs voice),
pointed at the loopback fakes that speak their wire formats."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest

from media_server.agents import BUILTIN_AGENTS
from media_server.providers import build_providers
from tests.conftest import make_settings, speech_48k
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.openai_fake import start_openai_fake
from tests.voice_client import VoiceClient

REPLY = "Of course. Which day works best for you, and may I have your name?"


@pytest.fixture
async def cloud():
    openai = await start_openai_fake(
        transcript="I would like to book an appointment", reply=REPLY, api_key="sk-test"
    )
    eleven = await start_elevenlabs_fake(api_key="el-test")
    settings = make_settings(
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        elevenlabs_api_key="el-test",
        elevenlabs_base_url=eleven.base_url,
    )
    providers = build_providers(settings)
    yield openai, eleven, providers, settings
    await providers.close()
    await openai.close()
    await eleven.close()


def chat_requests(openai):
    return [r for r in openai.requests if r.path == "/v1/chat/completions"]


async def test_spoken_turns_on_cloud_providers(leak_check, cloud, server_factory):
    openai, eleven, providers, _ = cloud
    server = await server_factory(
        providers=providers,
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        elevenlabs_api_key="el-test",
        elevenlabs_base_url=eleven.base_url,
        # These count the turn's own requests: a pause the VAD hears inside
        # the phrase on a loaded box would add a speculative transcription.
        turn_max_speculative=0,
    )
    client = VoiceClient(server.base_url)
    try:
        hello = await client.connect("receptionist")
        assert hello["providers"] == {"stt": "openai", "llm": "openai", "tts": "elevenlabs"}
        for turn in (1, 2):
            since = len(client.events)
            speech_end = await client.say(speech_48k("I would like to book an appointment"))
            await client.wait_for("turn_metrics", since=since, timeout=30)
            await client.wait_for("status_update", since=since, status="idle", timeout=10)
            events = client.events[since:]
            transcript = next(e for e in events if e["type"] == "transcription")
            assert transcript["text"] == "I would like to book an appointment"
            replies = [e for e in events if e["type"] == "llm_response"]
            assert replies[-1] == {
                "type": "llm_response",
                "text": REPLY,
                "is_final": True,
                "turn_id": turn,
            }
            # Streamed: the reply grew on the page before the final version.
            partial = [e for e in replies if not e["is_final"]]
            assert partial and all(REPLY.startswith(e["text"]) for e in partial)
            assert len(partial[0]["text"]) < len(REPLY)
            assert client.voiced_frames_after(speech_end) > 10

        # What went over the wire, as the real APIs expect it.
        stt = [r for r in openai.requests if r.path == "/v1/audio/transcriptions"]
        assert len(stt) == 2
        params = stt[0].files["file"].wav_params
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
        chats = chat_requests(openai)
        assert len(chats) == 2 and chats[0].json["stream"] is True
        first, second = chats[0].json["messages"], chats[1].json["messages"]
        # The agent's prompt, and (it has tools) today's date to book by.
        assert first[0]["role"] == "system"
        prompt = BUILTIN_AGENTS["receptionist"].prompt
        assert first[0]["content"].startswith(prompt + "\n\nToday is ")
        assert "book_appointment" in {t["function"]["name"] for t in chats[0].json["tools"]}
        assert first[1:] == [{"role": "user", "content": "I would like to book an appointment"}]
        # The second turn remembers the first exchange.
        assert [m["role"] for m in second[1:]] == ["user", "assistant", "user"]
        assert second[2]["content"] == REPLY
        tts = [r for r in eleven.requests if "/v1/text-to-speech/" in r.path]
        assert tts and all(
            r.path.startswith(f"/v1/text-to-speech/{BUILTIN_AGENTS['receptionist'].voice_id}/")
            for r in tts
        )
        assert {r.json["text"] for r in tts[:2]} == {
            "Of course.",
            "Which day works best for you, and may I have your name?",
        }
    finally:
        await client.close()


async def test_tts_of_first_sentence_starts_while_the_llm_still_writes(cloud, server_factory):
    openai, eleven, providers, _ = cloud
    openai.knobs.reply = "Sure thing. " + "This reply keeps going for a while. " * 8
    openai.knobs.chunk_delay_s = 0.03
    server = await server_factory(providers=providers)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        since = len(client.events)
        client.send({"type": "text_input", "text": "Tell me about pricing"})
        final = await client.wait_for("llm_response", since=since, is_final=True, timeout=30)
        final_at = client.event_times[client.events.index(final)]
        first_tts = next(r for r in eleven.requests if "/v1/text-to-speech/" in r.path)
        assert first_tts.json["text"] == "Sure thing."
        # Synthesis of the first sentence began before the model finished writing.
        assert first_tts.started_at < final_at
        first_audio = await client.first_voiced_after(0, timeout=30)
        assert first_audio < final_at
        client.send({"type": "interrupt"})
    finally:
        await client.close()


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


async def test_near_silence_never_reaches_whisper(cloud, server_factory):
    openai, _, providers, _ = cloud
    server = await server_factory(providers=providers)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        quiet = bytes(speech_48k("hello there"))
        # Scale the speech down to a whisper the VAD still hears but STT must skip.
        import numpy as np

        samples = (np.frombuffer(quiet, dtype="<i2") * 0.003).astype("<i2").tobytes()
        since = len(client.events)
        await client.say(samples)
        await asyncio.sleep(1.5)
        assert not [r for r in openai.requests if r.path == "/v1/audio/transcriptions"]
        assert "transcription" not in client.types(since)
    finally:
        await client.close()
