"""STT_PROVIDER=openai-realtime through the real openai SDK's realtime client,
over a real WebSocket to the loopback OpenAI fake (its realtime transcription
protocol: openai_realtime_fake.py). Run in a loopback-only namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from media_server.deadlines import StageDeadlines
from media_server.providers.openai_realtime_stt import OpenAIRealtimeSTT
from media_server.providers.openai_stt import OpenAISTT
from media_server.transcription import transcribe
from media_server.types import ProviderError, Utterance
from tests.audio_fixtures import silence, sine, speech_like
from tests.fakes.engines import FakeLLM, FakeTTS, fake_providers
from tests.fakes.openai_fake import OpenAIFake, start_openai_fake
from tests.fakes.pipeline import wait_until
from tests.unit import test_session

calls = test_session.calls  # the session fixture: opens calls, checks nothing is left
SILENCE = {"turn_detector": "silence", "turn_silence_ms": 400}

KEY = "sk-test-realtime-0123456789abcdef"
BYTES_24K = 48000  # a second of PCM16 at 24 kHz


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await start_openai_fake(api_key=KEY, transcript="batch words")
    yield server
    await server.close()


@pytest.fixture
async def stt(fake: OpenAIFake) -> AsyncIterator[OpenAIRealtimeSTT]:
    batch = OpenAISTT(api_key=KEY, base_url=fake.base_url, model="whisper-1")
    engine = OpenAIRealtimeSTT(
        api_key=KEY, base_url=fake.base_url, model="gpt-4o-mini-transcribe", batch=batch
    )
    yield engine
    await engine.close()


def feed(stream, pcm: bytes) -> None:
    for i in range(0, len(pcm), 640):  # 20 ms frames, as the listener feeds them
        stream.feed(pcm[i : i + 640])


async def test_a_turn_streams_while_spoken_and_each_pause_is_transcribed(
    fake: OpenAIFake, stt: OpenAIRealtimeSTT
) -> None:
    fake.realtime.knobs.transcripts = ["I would like", "a room, please."]
    stream = stt.open_stream()
    assert stream is not None
    feed(stream, sine(0.5, 220.0) + silence(0.1))
    assert (await stream.interim()).text == "I would like"
    feed(stream, sine(0.5, 220.0) + silence(0.1))
    assert (await stream.finish()).text == "I would like a room, please."

    [session] = fake.realtime.sessions
    assert session.query.get("intent") == "transcription"
    assert session.authorization == f"Bearer {KEY}"
    assert session.session is not None and session.session["type"] == "transcription"
    audio_in = session.session["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert audio_in["turn_detection"] is None  # our listener ends turns
    # All 1.2 s went out as 24 kHz PCM16 (the resampler may hold a few samples).
    assert abs(session.appended_bytes - 1.2 * BYTES_24K) < 0.02 * BYTES_24K
    assert len(session.committed) == 2
    assert not any(r.path.endswith("/transcriptions") for r in fake.requests)  # no batch


async def test_a_turn_that_ends_in_its_pause_needs_no_further_transcription(
    fake: OpenAIFake, stt: OpenAIRealtimeSTT
) -> None:
    fake.realtime.knobs.transcripts = ["What time do you open?", "never asked"]
    stream = stt.open_stream()
    feed(stream, sine(0.6, 220.0) + silence(0.1))
    assert (await stream.interim()).text == "What time do you open?"
    feed(stream, silence(0.3))  # the rest of the pause that ends the turn
    assert (await stream.finish()).text == "What time do you open?"
    [session] = fake.realtime.sessions
    assert len(session.committed) == 1  # the transcript was ready at the end of the turn


async def test_an_error_event_hands_the_turn_to_the_batch_endpoint(
    fake: OpenAIFake, stt: OpenAIRealtimeSTT
) -> None:
    fake.realtime.knobs.fail_commit = 1
    stream = stt.open_stream()
    pcm = sine(0.6, 220.0) + silence(0.1)
    feed(stream, pcm)
    with pytest.raises(ProviderError) as failed:
        await stream.interim()
    assert failed.value.stage == "stt" and failed.value.kind == "unavailable"
    # The turn still has every word: the whole utterance goes to the batch endpoint.
    utterance = Utterance(pcm, sample_rate=16000, peak_dbfs=-6.0)
    deadlines = StageDeadlines(stt_s=5.0, llm_s=5.0, tts_s=5.0)
    assert await transcribe(utterance, stream, stt, deadlines) == "batch words"
    assert [r.path for r in fake.requests if r.path.endswith("transcriptions")] == [
        "/v1/audio/transcriptions"
    ]


async def test_a_refused_key_fails_the_stream_without_showing_the_key(
    fake: OpenAIFake,
) -> None:
    batch = OpenAISTT(api_key="sk-wrong", base_url=fake.base_url)
    stt = OpenAIRealtimeSTT(api_key="sk-wrong", base_url=fake.base_url, model="m", batch=batch)
    try:
        stream = stt.open_stream()
        feed(stream, sine(0.3, 220.0))
        with pytest.raises(ProviderError) as failed:
            await stream.finish()
        assert failed.value.kind == "auth" and "sk-wrong" not in str(failed.value)
        assert fake.realtime.sessions == []  # refused at the upgrade
    finally:
        await stt.close()


async def test_a_pause_transcript_starts_the_reply_and_stands_for_the_turn(
    fake: OpenAIFake, stt: OpenAIRealtimeSTT, calls
) -> None:
    fake.realtime.knobs.transcripts = ["I would like an appointment", "never asked"]
    llm = FakeLLM("Sure, what day?")
    call = calls(fake_providers(stt=stt, llm=llm, tts=FakeTTS(audio_ms=60)), **SILENCE)
    call.say(speech_like(0.6) + silence(0.2))
    # The pause was committed and transcribed over the socket, and the model asked.
    await wait_until(lambda: len(llm.calls) == 1)
    assert not call.session.conversation.busy and call.sent.of("llm_response") == []
    call.say(silence(0.4))
    final = await call.sent.wait_for("llm_response", is_final=True)
    assert final["text"] == "Sure, what day?" and len(llm.calls) == 1
    [session] = fake.realtime.sessions
    assert len(session.committed) == 1  # the turn's end asked for nothing more
    assert call.sent.of("transcription", is_final=True)[0]["text"] == "I would like an appointment"
    assert not any(r.path.endswith("/transcriptions") for r in fake.requests)
