"""A rejected key mid-call, end to end: a real client, a running server, the
real ElevenLabs and OpenAI providers (built from settings, as a deployment
builds them) against the loopback fakes. The call goes on in the next voice."""

from __future__ import annotations

import aiohttp

from media_server.providers import build_providers
from tests.conftest import make_settings
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.openai_fake import start_openai_fake
from tests.voice_client import VoiceClient

KEY = "sk-test-fallback-0123456789abcdef"
REPLY = "Sure, I can help with that."


async def test_a_rejected_voice_key_falls_back_to_the_next_voice(leak_check, server_factory):
    eleven = await start_elevenlabs_fake(api_key="the-right-key")
    openai = await start_openai_fake(api_key=KEY, reply=REPLY, speech_seconds=0.4)
    settings = dict(
        openai_api_key=KEY,
        openai_base_url=openai.base_url,
        elevenlabs_api_key="a-revoked-key",
        elevenlabs_base_url=eleven.base_url,
        stt_provider="openai",
        llm_provider="openai",
        tts_provider="elevenlabs,openai",
        tts_timeout_s=2,
    )
    providers = build_providers(make_settings(**settings))
    server = await server_factory(providers=providers, **settings)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        hello = await client.wait_for("connection_established")
        assert hello["providers"]["tts"] == "elevenlabs"
        for turn_id in (1, 2):
            client.send({"type": "text_input", "text": "Can you help me?"})
            await client.wait_for("turn_metrics", turn_id=turn_id, timeout=20)
        assert not [e for e in client.events if e["type"] in ("error", "session_end")]
        [notice] = [e for e in client.events if e["type"] == "provider_fallback"]
        assert (notice["from"], notice["to"]) == ("elevenlabs", "openai")
        assert notice["providers"]["tts"] == "openai"
        assert client.audio.voiced_frames > 0  # the reply was heard, in the other voice
        # The revoked key was tried once; it rests while the backup speaks.
        assert len(eleven.requests) == 1
        assert sum(r.path == "/v1/audio/speech" for r in openai.requests) >= 2
        async with aiohttp.ClientSession() as http, http.get(f"{server.base_url}/metrics") as r:
            text = await r.text()
        assert (
            'voice_agent_provider_fallbacks_total{from="elevenlabs",stage="tts",to="openai"} 1.0'
            in text
        )
        assert server.session_count == 1
    finally:
        await client.close()
        await providers.close()
        await eleven.close()
        await openai.close()
