"""The spine, end to end: a real aiortc client speaks to a running server."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import speech_48k
from tests.voice_client import VoiceClient

BOOKING = "Hello, I would like to book an appointment for tomorrow morning."


def _index(types: list[str], name: str) -> int:
    assert name in types, f"{name} missing from {types}"
    return types.index(name)


def _final_transcription(events: list[dict]) -> int:
    finals = [i for i, e in enumerate(events) if e["type"] == "transcription" and e["is_final"]]
    assert len(finals) == 1, events
    return finals[0]


async def _spoken_turn(client: VoiceClient, text: str) -> tuple[int, float]:
    since = len(client.events)
    speech_end = await client.say(speech_48k(text))
    metrics = await client.wait_for("turn_metrics", since=since, timeout=60)
    await client.wait_for("status_update", since=since, status="idle", timeout=10)
    return metrics["turn_id"], speech_end


async def test_spoken_turns_reach_transcript_reply_and_audio(server, leak_check):
    client = VoiceClient(server.base_url)
    try:
        hello = await client.connect("receptionist")
        assert hello["agent_id"] == "receptionist"
        assert hello["agent"] == "Receptionist"
        assert hello["providers"] == {"stt": "whisper", "llm": "scripted", "tts": "espeak"}
        assert server.session_count == 1

        # One spoken turn end to end; the order of statuses over many turns
        # is the session's unit tests' (tests/unit/test_session.py).
        for text in (BOOKING,):
            since = len(client.events)
            turn_id, speech_end = await _spoken_turn(client, text)
            types = client.types(since)
            # The order of the contract (DESIGN.md §5).
            listening = _index(types, "status:listening")
            processing = _index(types, "status:processing")
            events = client.events[since:]
            transcription = _final_transcription(events)
            # What was heard at the pauses came before the turn, marked interim.
            interims = [e for e in events[:transcription] if e["type"] == "transcription"]
            assert all(not e["is_final"] for e in interims)
            reply = _index(types, "llm_response")
            generating = _index(types, "status:generating_audio")
            speaking = _index(types, "status:speaking")
            metrics = _index(types, "turn_metrics")
            assert listening < processing < transcription < reply
            assert transcription < generating < speaking < metrics
            assert types[-1] == "status:idle"
            transcript = events[transcription]
            assert transcript["text"].strip() and transcript["is_final"]
            finals = [e for e in events if e["type"] == "llm_response" and e["is_final"]]
            assert len(finals) == 1 and finals[0]["text"].strip()
            assert finals[0]["text"].lower() != transcript["text"].lower()  # not an echo
            assert {e["turn_id"] for e in events if "turn_id" in e} == {turn_id}
            timings = events[metrics]
            assert 0 < timings["transcript_ms"] <= timings["first_token_ms"]
            assert timings["first_token_ms"] <= timings["first_audio_ms"]
            # The reply was heard: voiced frames arrived after the person stopped.
            assert client.voiced_frames_after(speech_end) > 25  # > 0.5 s of speech

        since = len(client.events)
        client.send({"type": "end_session"})
        end = await client.wait_for("session_end", since=since, timeout=10)
        assert end["reason"] == "client_ended"
        for _ in range(50):
            if server.session_count == 0:
                break
            await asyncio.sleep(0.1)
        assert server.session_count == 0
    finally:
        await client.close()


async def test_text_input_gives_a_full_turn(server, leak_check):
    client = VoiceClient(server.base_url)
    try:
        await client.connect("callcenter")
        await client.wait_for("status_update", status="idle")
        since = len(client.events)
        sent_at = asyncio.get_running_loop().time()
        client.send({"type": "text_input", "text": "I forgot my password and cannot log in"})
        transcript = await client.wait_for("transcription", since=since, timeout=20)
        assert transcript["text"] == "I forgot my password and cannot log in"
        final = await client.wait_for("llm_response", since=since, is_final=True, timeout=20)
        assert "password" in final["text"].lower()
        await client.wait_for("turn_metrics", since=since, timeout=30)
        await client.wait_for("status_update", since=since, status="idle", timeout=10)
        assert client.voiced_frames_after(sent_at) > 25
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.base_url}/metrics") as r:
                metrics = await r.text()
        assert 'voice_agent_turns_total{outcome="completed"} 1.0' in metrics
        assert 'voice_agent_turn_stage_ms_count{stage="first_audio"} 1.0' in metrics
        assert "voice_agent_sessions_active 1.0" in metrics
        assert "voice_agent_event_loop_lag_ms_count" in metrics
        assert "voice_agent_outbound_frames_late_total" in metrics
    finally:
        await client.close()
    for _ in range(100):
        if server.session_count == 0:
            break
        await asyncio.sleep(0.1)
    assert server.session_count == 0


async def test_bad_client_messages_get_errors_and_session_keeps_working(server):
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        since = len(client.events)
        client.send("not json")
        client.send({"type": "launch_rockets"})
        client.send({"type": "text_input", "text": ""})
        client.send({"type": "ping"})
        await client.wait_for("pong", since=since, timeout=10)
        errors = [e for e in client.events[since:] if e["type"] == "error"]
        assert [e["code"] for e in errors] == ["invalid_message", "unknown_type", "empty_text"]
        assert all(e["message"] for e in errors)
        client.send({"type": "text_input", "text": "How much does it cost?"})
        final = await client.wait_for("llm_response", since=since, is_final=True, timeout=20)
        assert final["text"]
    finally:
        await client.close()
