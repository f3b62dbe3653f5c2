"""Phone calls end to end: Twilio's webhook and Media Streams, and the
generic L16 stream, driven by a fake carrier over a real WebSocket (real
μ-law, real-time pacing) against the loopback fakes of OpenAI and
ElevenLabs."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import aiohttp
import pytest

from media_server.providers import build_providers
from media_server.store.records import transcript
from signaling.state import ACTING_KEY, REGISTRY_KEY
from signaling.tokens import mint_token
from signaling.twilio_webhook import twilio_signature
from tests.audio_fixtures import speech_48k
from tests.conftest import make_settings
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.mp3_fixture import mp3_bytes
from tests.fakes.openai_fake import start_openai_fake
from tests.fakes.phone_client import PhoneClient, stream_of_twiml
from tests.fakes.pipeline import wait_until

AUTH_TOKEN = "twilio-auth-token-for-tests"
SENTENCES = [f"This is sentence number {n} of a long answer." for n in range(1, 9)]
LONG_REPLY = " ".join(SENTENCES)
CALL_FORM = {"CallSid": "CA" + "1" * 32, "From": "+15550001111", "To": "+15550002222"}


@asynccontextmanager
async def engines(*, transcript: str, reply: str, audio_s: float):
    openai = await start_openai_fake(transcript=transcript, reply=reply, chunk_delay_s=0.002)
    eleven = await start_elevenlabs_fake(audio=mp3_bytes(audio_s))
    providers = build_providers(
        make_settings(
            openai_api_key="sk-test",
            openai_base_url=openai.base_url,
            elevenlabs_api_key="el-test",
            elevenlabs_base_url=eleven.base_url,
        )
    )
    try:
        yield openai, providers
    finally:
        await providers.close()
        await openai.close()
        await eleven.close()


async def post_webhook(
    base_url: str,
    query: str = "?agent=receptionist",
    *,
    signature=None,
    form=None,
    token=AUTH_TOKEN,
    signed_url=None,
):
    form = dict(CALL_FORM if form is None else form)
    url = f"{base_url}/telephony/twilio/voice{query}"
    if signature is None:
        signature = twilio_signature(token, signed_url or url, form.items())
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as r:
            return r.status, await r.text()


async def dial(server, kind: str, **params: str) -> PhoneClient:
    """A call as the carrier places it: Twilio through our webhook's TwiML."""
    client = PhoneClient(kind)
    if kind == "twilio":
        status, twiml = await post_webhook(server.base_url)
        assert status == 200, twiml
        url, parameters = stream_of_twiml(twiml)
    else:
        url = server.base_url.replace("http://", "ws://") + "/telephony/pcm?agent=receptionist"
        parameters = {}
    await client.connect(url, {**parameters, **params})
    return client


def last_voiced(client: PhoneClient) -> float:
    voiced = [h.at for h in client.audio if h.voiced]
    return voiced[-1] if voiced else float("inf")


async def until_quiet(
    client: PhoneClient, since: float = 0.0, quiet_s: float = 0.4, timeout: float = 15
) -> None:
    """The agent has said something after ``since`` and then nothing for ``quiet_s``."""

    def quiet() -> bool:
        return bool(client.voiced_since(since)) and time.monotonic() - last_voiced(client) > quiet_s

    await wait_until(quiet, timeout)


def idle(server) -> bool:
    """No turn runs and nobody is heard speaking (a key press now is a turn alone)."""
    sessions = list(server.app[REGISTRY_KEY])
    return all(not s.conversation.busy and not s.listener.person_speaking for s in sessions)


async def caller_done(client: PhoneClient, server) -> None:
    """The caller's speech has all been sent and heard to its end."""
    await asyncio.wait_for(client.speech_sent.wait(), 10)
    await wait_until(lambda: idle(server), timeout=10)


def chats(openai) -> list[list[dict]]:
    return [r.json["messages"] for r in openai.requests if r.path == "/v1/chat/completions"]


async def metrics_text(server) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.base_url + "/metrics") as r:
            return await r.text()


@pytest.mark.parametrize("kind", ["twilio", "pcm"])
async def test_a_spoken_turn_is_answered_in_the_lines_audio_and_the_end_frees_the_slot(
    leak_check, server_factory, kind, tmp_path
):
    async with engines(transcript="I need an appointment.", reply="Sure, when?", audio_s=0.6) as (
        openai,
        providers,
    ):
        server = await server_factory(
            providers=providers,
            twilio_auth_token=AUTH_TOKEN,
            database_url=f"sqlite:///{tmp_path}/voice-agent.db",
        )
        client = await dial(server, kind)
        try:
            await until_quiet(client)  # the greeting, on answer
            assert client.marks_echoed, "each sentence is marked"
            assert server.session_count == 1
            spoken_s = client.say(speech_48k("I need an appointment for tomorrow"))
            said_at = time.monotonic()
            await wait_until(lambda: client.voiced_since(said_at + spoken_s), timeout=15)
            assert chats(openai)[-1][-1] == {"role": "user", "content": "I need an appointment."}
            await until_quiet(client)
            text = await metrics_text(server)
            label = "twilio" if kind == "twilio" else "pcm_ws"
            assert f'voice_agent_calls_total{{transport="{label}"}} 1.0' in text
        finally:
            await client.hang_up()
        await wait_until(lambda: server.session_count == 0, timeout=5)
        assert 'reason="caller_hung_up"' in await metrics_text(server)
        # The call is recorded like a page's: its turn and how it ended.
        db = server.app[ACTING_KEY].db
        rows = await db.run(
            lambda c: [tuple(r) for r in c.execute("SELECT id, end_reason, agent_id FROM sessions")]
        )
        assert len(rows) == 1, rows
        [(session_id, reason, _)] = rows
        record = await transcript(db, session_id, None)
        assert reason == "caller_hung_up" and record is not None
        assert [t["heard"] for t in record["turns"]] == ["I need an appointment."]


@pytest.mark.parametrize("kind", ["twilio", "pcm"])
async def test_barge_in_sends_clear_and_the_history_keeps_only_marked_sentences(
    server_factory, kind
):
    async with engines(transcript="", reply=LONG_REPLY, audio_s=1.5) as (openai, providers):
        server = await server_factory(
            providers=providers, twilio_auth_token=AUTH_TOKEN, barge_in_min_ms=200
        )
        client = await dial(server, kind)
        try:
            await until_quiet(client)
            await wait_until(lambda: idle(server), timeout=5)  # the greeting's marks are in
            before = len(client.marks_echoed)
            await client.press("1")  # "tell me everything"
            await wait_until(lambda: len(client.marks_echoed) > before, timeout=15)
            client.say(speech_48k("wait, stop, I have a question"))
            await wait_until(lambda: client.clears, timeout=10)
            cleared_at = client.clears[0]
            heard = [m for at, m in client.marks_echoed[before:] if at < cleared_at]
            await caller_done(client, server)
            assert not client.voiced_since(cleared_at + 0.3), "the reply stopped"
            # The barge-in transcribes to "" (no turn); a key press asks again,
            # and the model sees what the caller heard: the marked sentences.
            await client.press("2")
            await wait_until(lambda: len(chats(openai)) >= 2, timeout=10)
            messages = chats(openai)[-1]
            assistant = [m["content"] for m in messages if m["role"] == "assistant"]
            assert 1 <= len(heard) < len(SENTENCES)
            assert assistant == [" ".join(SENTENCES[: len(heard)])]
        finally:
            await client.hang_up()
        await wait_until(lambda: server.session_count == 0, timeout=5)


@pytest.mark.parametrize("kind", ["twilio", "pcm"])
async def test_a_key_press_reaches_the_agent_and_goodbye_hangs_up(server_factory, kind):
    async with engines(transcript="", reply="Have a great day, goodbye!", audio_s=0.4) as (
        openai,
        providers,
    ):
        server = await server_factory(providers=providers, twilio_auth_token=AUTH_TOKEN)
        client = await dial(server, kind)
        try:
            await until_quiet(client)
            openai.knobs.reply = "You pressed three."
            pressed_at = time.monotonic()
            await client.press("3")
            await wait_until(lambda: chats(openai), timeout=10)
            assert chats(openai)[-1][-1] == {"role": "user", "content": "The caller pressed 3."}
            # The agent acts on the phone as on the page: its tools are offered.
            [request] = [r for r in openai.requests if r.path == "/v1/chat/completions"]
            assert "book_appointment" in {t["function"]["name"] for t in request.json["tools"]}
            await until_quiet(client, since=pressed_at)
            await wait_until(lambda: idle(server), timeout=5)
            # A goodbye from the agent alone does not hang up: the caller said none.
            openai.knobs.reply = "Have a great day, goodbye!"
            pressed_at = time.monotonic()
            await client.press("#")
            await wait_until(lambda: len(chats(openai)) >= 2, timeout=10)
            await until_quiet(client, since=pressed_at)
            await wait_until(lambda: idle(server), timeout=5)
            assert server.session_count == 1
            # The caller says bye and the agent answers with a goodbye: it
            # hangs up once its goodbye was heard.
            openai.knobs.transcript = "Thanks, bye."
            client.say(speech_48k("thanks, bye"))
            await asyncio.wait_for(client.closed.wait(), 20)
        finally:
            await client.close()
        await wait_until(lambda: server.session_count == 0, timeout=5)
        assert 'reason="agent_hung_up"' in await metrics_text(server)


async def test_the_greeting_can_be_talked_over(server_factory):
    async with engines(transcript="", reply="Sure.", audio_s=4.0) as (openai, providers):
        server = await server_factory(providers=providers, twilio_auth_token=AUTH_TOKEN)
        client = await dial(server, "twilio")
        try:
            await wait_until(lambda: client.voiced_since(0), timeout=10)
            client.say(speech_48k("hello, hello, is anybody there?"))
            await wait_until(lambda: client.clears, timeout=10)
            await caller_done(client, server)
            assert not client.voiced_since(client.clears[0] + 0.3)
            await client.press("1")
            await wait_until(lambda: chats(openai), timeout=10)
            # Nothing of the greeting was confirmed heard: the model sees none of it.
            assert [m["role"] for m in chats(openai)[-1]] == ["system", "user"]
        finally:
            await client.hang_up()
        await wait_until(lambda: server.session_count == 0, timeout=5)


async def test_the_webhook_checks_the_signature(server_factory):
    server = await server_factory(twilio_auth_token=AUTH_TOKEN)
    status, twiml = await post_webhook(server.base_url)
    assert status == 200 and "<Connect><Stream" in twiml
    assert (await post_webhook(server.base_url, signature="bm90LXRoZS1zaWduYXR1cmU="))[0] == 403
    assert (await post_webhook(server.base_url, token="another-accounts-token"))[0] == 403
    assert (await post_webhook(server.base_url, signature=""))[0] == 403
    # A field changed after signing.
    signed = twilio_signature(
        AUTH_TOKEN, server.base_url + "/telephony/twilio/voice", CALL_FORM.items()
    )
    assert (
        await post_webhook(server.base_url, "", signature=signed, form={**CALL_FORM, "To": "+1999"})
    )[0] == 403
    # Behind a proxy: signed over PUBLIC_URL, and the stream is wss:// there.
    proxied = await server_factory(
        twilio_auth_token=AUTH_TOKEN, public_url="https://voice.example.com"
    )
    status, twiml = await post_webhook(
        proxied.base_url,
        signed_url="https://voice.example.com/telephony/twilio/voice?agent=receptionist",
    )
    assert status == 200
    url, params = stream_of_twiml(twiml)
    assert url == "wss://voice.example.com/telephony/twilio/stream"
    assert params["agent"] == "receptionist" and params["From"] == "+15550001111"
    assert (await post_webhook(proxied.base_url))[0] == 403  # signed over our own URL
    # A local try: no signature needed, and none checked.
    unsigned = await server_factory(twilio_allow_unsigned="true")
    assert (await post_webhook(unsigned.base_url, signature=""))[0] == 200


async def test_agent_by_number_custom_parameters_and_busy(server_factory):
    server = await server_factory(
        twilio_auth_token=AUTH_TOKEN, phone_numbers="+15550002222=sales", max_sessions=1
    )
    status, twiml = await post_webhook(server.base_url, "?lang=de")
    _, params = stream_of_twiml(twiml)
    assert params["agent"] == "sales" and params["lang"] == "de"
    client = PhoneClient("twilio")
    await client.connect(*stream_of_twiml(twiml))
    try:
        await wait_until(lambda: server.session_count == 1, timeout=5)
        status, twiml = await post_webhook(server.base_url)
        assert status == 200 and '<Reject reason="busy"/>' in twiml
    finally:
        await client.hang_up()
    await wait_until(lambda: server.session_count == 0, timeout=5)


async def test_a_replayed_or_forged_stream_token_is_refused(server_factory):
    server = await server_factory(twilio_auth_token=AUTH_TOKEN)
    _, twiml = await post_webhook(server.base_url)
    url, params = stream_of_twiml(twiml)
    first = PhoneClient("twilio")
    await first.connect(url, params)
    await wait_until(lambda: server.session_count == 1, timeout=5)
    await first.hang_up()
    await wait_until(lambda: server.session_count == 0, timeout=5)
    forged = mint_token("not-the-servers-secret", 300)
    for token in (params["token"], forged, "", params["token"][:-2] + "AA"):
        again = PhoneClient("twilio")
        await again.connect(url, {**params, "token": token})
        await asyncio.wait_for(again.closed.wait(), 5)
        await again.close()
        assert again.close_code == 1008, token
        assert server.session_count == 0
    text = await metrics_text(server)
    assert 'voice_agent_calls_refused_total{reason="token_used",transport="twilio"} 1.0' in text


async def test_the_generic_stream_needs_a_token_when_the_server_does(server_factory):
    server = await server_factory(auth_secret="s" * 32)
    base = server.base_url.replace("http://", "ws://") + "/telephony/pcm?agent=receptionist"
    token = mint_token("s" * 32, 300)
    for params, refused in (({}, True), ({"token": token}, False), ({"token": token}, True)):
        client = PhoneClient("pcm")
        await client.connect(base, params)
        if refused:
            await asyncio.wait_for(client.closed.wait(), 5)
            assert client.close_code == 1008
        else:
            await wait_until(lambda: server.session_count == 1, timeout=5)
        await client.hang_up()
        await wait_until(lambda: server.session_count == 0, timeout=5)
