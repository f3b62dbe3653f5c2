"""An agent that acts, through the whole server: a call books over the data
channel (the model is the OpenAI fake streaming tool calls), the page sees
tool_call / tool_result, the call's record is served to its key only, and
after a restart another call finds the booking."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiohttp

from media_server.providers.base import Providers
from media_server.providers.openai_llm import OpenAILLM
from tests.conftest import embedded_providers
from tests.fakes.openai_fake import start_openai_fake
from tests.fakes.pipeline import wait_until
from tests.unit.test_tool_turns import tool_messages
from tests.voice_client import VoiceClient

KEY = "sk-test-acting"


def next_tuesday() -> dt.date:
    today = dt.date.today()
    return today + dt.timedelta(days=(1 - today.weekday()) % 7 or 7)


async def a_call(server, text: str) -> tuple[VoiceClient, list[dict]]:
    client = VoiceClient(server.base_url)
    await client.connect("receptionist")
    since = len(client.events)
    client.send({"type": "text_input", "text": text})
    await client.wait_for("turn_metrics", since=since, timeout=30)
    return client, client.events[since:]


async def get_record(server, session_id: str, key: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.base_url}/api/sessions/{session_id}", headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_book_by_text_then_find_it_after_a_restart(server_factory, tmp_path: Path):
    fake = await start_openai_fake(api_key=KEY)
    llm = OpenAILLM(api_key=KEY, base_url=fake.base_url)
    offline = embedded_providers()
    providers = Providers(stt=offline.stt, llm=llm, tts=offline.tts)
    database = f"sqlite:///{tmp_path}/data/voice-agent.db"
    tuesday = next_tuesday()
    try:
        fake.knobs.reply = "Done."  # short: the call waits until it has been spoken
        fake.knobs.tool_calls = lambda body: (
            None
            if tool_messages(body)
            else [
                {
                    "name": "book_appointment",
                    "arguments": {
                        "date": tuesday.isoformat(),
                        "time": "10:00",
                        "name": "Ada Byron",
                    },
                }
            ]
        )
        first = await server_factory(providers=providers, database_url=database)
        client, events = await a_call(first, "Book me Tuesday at ten, I'm Ada Byron")
        try:
            [call] = [e for e in events if e["type"] == "tool_call"]
            assert call["name"] == "book_appointment"
            assert call["arguments"]["time"] == "10:00"
            [result] = [e for e in events if e["type"] == "tool_result"]
            spoken = f"{tuesday:%a} {tuesday.day} {tuesday:%b}"
            assert result == {
                "type": "tool_result",
                "call_id": call["call_id"],
                "ok": True,
                "summary": f"Booked: {spoken}, 10:00",
            }
            # The page ends the call; its record is there, for its key only.
            session_id, key = client.session_id, client.record_key
            assert key
        finally:
            await client.close()
        await first.close()  # a restart: everything in memory is gone

        second = await server_factory(providers=providers, database_url=database)
        status, record = await get_record(second, session_id, key)
        assert status == 200 and record["agent_id"] == "receptionist"
        [turn] = record["turns"]
        assert turn["heard"] == "Book me Tuesday at ten, I'm Ada Byron"
        assert (turn["outcome"], turn["reply"]) == ("completed", "Done.")
        assert [t["name"] for t in turn["tools"]] == ["book_appointment"]
        assert turn["tools"][0]["ok"] is True and record["ended_at"]
        assert (await get_record(second, session_id, None))[0] == 401
        assert (await get_record(second, session_id, "not-the-key"))[0] == 404
        assert (await get_record(second, "no-such-session", key))[0] == 404

        # Another call, after the restart, asks about the appointment.
        fake.knobs.tool_calls = lambda body: (
            None
            if tool_messages(body)
            else [{"name": "find_appointments", "arguments": {"name": "Ada"}}]
        )
        client, events = await a_call(second, "When is my appointment? Ada Byron.")
        await client.close()
        [found] = [e for e in events if e["type"] == "tool_result"]
        assert found["ok"] and found["summary"] == f"Found: {spoken}, 10:00"
    finally:
        await llm.close()
        await fake.close()


async def test_with_auth_secret_an_access_token_reads_a_record(server_factory, tmp_path: Path):
    from signaling.tokens import mint_token

    secret = "s" * 32
    server = await server_factory(
        auth_secret=secret, database_url=f"sqlite:///{tmp_path}/data/voice-agent.db"
    )
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist", token=mint_token(secret, 60))
        since = len(client.events)
        client.send({"type": "text_input", "text": "Thanks"})
        await client.wait_for("turn_metrics", since=since, timeout=30)
    finally:
        await client.close()
    session_id = client.session_id
    await wait_until(lambda: server.session_count == 0, timeout=15)  # its record is closed
    status, record = await get_record(server, session_id, mint_token(secret, 60))
    assert status == 200 and record["turns"][0]["heard"] == "Thanks"
    assert (await get_record(server, session_id, client.record_key))[0] == 200
    assert (await get_record(server, session_id, "x" * 40))[0] == 404
