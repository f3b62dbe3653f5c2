"""The phone's own tools end to end: the model (the OpenAI fake streaming a
tool call) hangs up with ``end_call`` once its goodbye was heard, and
transfers with ``transfer_call``: on Twilio through the REST API (a fake on
loopback that checks the auth and the form), on the L16 stream with a
control message. A WebRTC call is offered neither."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from media_server.providers.base import Providers
from media_server.providers.openai_llm import OpenAILLM
from signaling.state import REGISTRY_KEY
from tests.audio_fixtures import speech_48k
from tests.conftest import embedded_providers
from tests.fakes.openai_fake import start_openai_fake
from tests.fakes.pipeline import wait_until
from tests.fakes.twilio_rest_fake import start_twilio_rest_fake
from tests.integration.test_agent_acting import a_call
from tests.integration.test_phone import (
    AUTH_TOKEN,
    LONG_REPLY,
    caller_done,
    chats,
    dial,
    engines,
    idle,
    until_quiet,
)
from tests.unit.test_tool_turns import tool_messages

TRANSFER_TO = "+15550100"
AGENTS_TOML = f"""
[agents.receptionist]
name = "Front desk"
description = "Answers the clinic's phone"
prompt = "You answer the phone for a clinic."
persona = "receptionist"
transfer_number = "{TRANSFER_TO}"
"""


def offered(request_json: dict) -> set[str]:
    return {t["function"]["name"] for t in request_json.get("tools", ())}


def calls_once(name: str):
    """The model calls ``name`` first, then answers in words."""
    return lambda body: None if tool_messages(body) else [{"name": name, "arguments": {}}]


def agents_file(tmp_path: Path) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(AGENTS_TOML)
    return path


async def answered(server, client) -> object:
    """The greeting was heard; the call's session."""
    await until_quiet(client)
    await wait_until(lambda: idle(server), timeout=5)
    [session] = list(server.app[REGISTRY_KEY])
    return session


@pytest.mark.parametrize("kind", ["twilio", "pcm"])
async def test_end_call_hangs_up_once_the_goodbye_was_heard(server_factory, kind):
    async with engines(transcript="", reply="Goodbye, take care.", audio_s=0.6) as (
        openai,
        providers,
    ):
        openai.knobs.tool_calls = calls_once("end_call")
        server = await server_factory(providers=providers, twilio_auth_token=AUTH_TOKEN)
        client = await dial(server, kind)
        try:
            session = await answered(server, client)
            pressed_at = time.monotonic()
            await client.press("1")  # no goodbye from the caller: only the tool hangs up
            await asyncio.wait_for(client.closed.wait(), 20)
        finally:
            await client.close()
        await wait_until(lambda: server.session_count == 0, timeout=5)
        first, second = (r.json for r in openai.requests if r.path == "/v1/chat/completions")
        # The agent's own tools and the phone's; no transfer without a number.
        assert {"end_call", "book_appointment"} <= offered(first)
        assert "transfer_call" not in offered(first)
        assert json.loads(tool_messages(second)[0]["content"])["ok"] is True
        assert session.end_reason == "agent_hung_up"
        assert client.voiced_since(pressed_at), "the goodbye was played"
        # Not mid-sentence: every sample written was confirmed heard (marks) first.
        assert session.speaker.queued_samples == 0
        assert session.speaker.played_samples > 0
        assert session.history.messages("")[-1].content == "Goodbye, take care."


async def test_talking_over_the_goodbye_keeps_the_call(server_factory):
    async with engines(transcript="", reply=LONG_REPLY, audio_s=1.5) as (openai, providers):
        openai.knobs.tool_calls = calls_once("end_call")
        server = await server_factory(
            providers=providers, twilio_auth_token=AUTH_TOKEN, barge_in_min_ms=200
        )
        client = await dial(server, "twilio")
        try:
            session = await answered(server, client)
            before = len(client.marks_echoed)
            await client.press("1")
            await wait_until(lambda: len(client.marks_echoed) > before, timeout=15)
            client.say(speech_48k("wait, one more thing"))
            await wait_until(lambda: client.clears, timeout=10)
            await caller_done(client, server)
            assert len(chats(openai)) == 2  # end_call was called, its goodbye cut short
            assert server.session_count == 1 and session.end_reason is None
            assert not client.closed.is_set()
        finally:
            await client.hang_up()
        await wait_until(lambda: server.session_count == 0, timeout=5)


@pytest.mark.parametrize("refuse", [False, True], ids=["transferred", "refused"])
async def test_transfer_call_on_twilio_goes_through_the_rest_api(
    server_factory, tmp_path: Path, refuse
):
    twilio = await start_twilio_rest_fake(AUTH_TOKEN, status=503 if refuse else None)
    async with engines(transcript="", reply="Anything else?", audio_s=0.6) as (openai, providers):
        openai.knobs.tool_calls = calls_once("transfer_call")
        openai.knobs.tool_preamble = "I will put you through now."
        server = await server_factory(
            providers=providers,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base=twilio.base_url,
            agents_file=agents_file(tmp_path),
        )
        client = await dial(server, "twilio")
        try:
            session = await answered(server, client)
            echoed_before = len(client.marks_echoed)
            await client.press("0")
            await wait_until(lambda: twilio.updates, timeout=15)
            [update] = twilio.updates
            assert (update.account_sid, update.call_sid) == ("AC" + "0" * 32, "CA" + "1" * 32)
            assert update.user == update.account_sid  # basic auth: AccountSid, auth token
            assert update.form == {"Twiml": f"<Response><Dial>{TRANSFER_TO}</Dial></Response>"}
            # The caller was told first: the preamble's marks came back before the request.
            told = [at for at, _ in client.marks_echoed[echoed_before:]]
            assert told and told[0] < update.at
            await wait_until(lambda: len(chats(openai)) >= 2, timeout=10)
            second = [r.json for r in openai.requests if r.path == "/v1/chat/completions"][1]
            result = json.loads(tool_messages(second)[0]["content"])
            if refuse:
                # The model hears why and the call goes on.
                assert "refused the transfer (503)" in result["error"]
                await until_quiet(client)
                await wait_until(lambda: idle(server), timeout=5)
                assert server.session_count == 1 and session.end_reason is None
            else:
                assert result["ok"] is True
                await asyncio.wait_for(client.closed.wait(), 20)
                assert session.end_reason == "transferred"
        finally:
            await client.close()
            await twilio.close()
        await wait_until(lambda: server.session_count == 0, timeout=5)


async def test_transfer_call_on_the_l16_stream_is_a_control_message(server_factory, tmp_path):
    async with engines(transcript="", reply="Connecting.", audio_s=0.4) as (openai, providers):
        openai.knobs.tool_calls = calls_once("transfer_call")
        openai.knobs.tool_preamble = "One moment, I will transfer you."
        server = await server_factory(providers=providers, agents_file=agents_file(tmp_path))
        client = await dial(server, "pcm")
        try:
            session = await answered(server, client)
            await client.press("0")
            await asyncio.wait_for(client.closed.wait(), 20)  # we close the stream after it
        finally:
            await client.close()
        assert [m for _, m in client.others] == [{"event": "transfer", "to": TRANSFER_TO}]
        assert session.end_reason == "transferred"
        await wait_until(lambda: server.session_count == 0, timeout=5)


async def test_a_webrtc_call_is_not_offered_the_phone_tools(server_factory, tmp_path: Path):
    key = "sk-test-phone-tools"
    fake = await start_openai_fake(api_key=key, reply="Hello there.")
    offline = embedded_providers()
    llm = OpenAILLM(api_key=key, base_url=fake.base_url)
    providers = Providers(stt=offline.stt, llm=llm, tts=offline.tts)
    try:
        server = await server_factory(providers=providers, agents_file=agents_file(tmp_path))
        client, _ = await a_call(server, "Can you put me through to someone?")
        await client.close()
        [request] = [r.json for r in fake.requests if r.path == "/v1/chat/completions"]
        assert "book_appointment" in offered(request)  # the agent's own tools are there
        assert not offered(request) & {"end_call", "transfer_call"}
    finally:
        await llm.close()
        await fake.close()
