"""A call answered in Piper's voice (TTS_PROVIDER=piper,espeak), end to end:
a real aiortc client types a turn and hears the reply over WebRTC."""

from __future__ import annotations

import os
import time

import pytest

from media_server.providers import build_providers
from media_server.providers.piper_tts import missing_extra
from tests.conftest import make_settings
from tests.voice_client import VoiceClient

# CI installs the extra (.ci/run) and must run this; elsewhere it may be absent.
if missing_extra() is not None and not os.environ.get("CI"):
    pytest.skip(f"{missing_extra()}", allow_module_level=True)


async def test_a_reply_is_heard_in_pipers_voice(server_factory):
    settings = make_settings(TTS_PROVIDER="piper,espeak", STT_PROVIDER="pocketsphinx")
    providers = build_providers(settings)
    client = None
    try:
        server = await server_factory(
            providers=providers, TTS_PROVIDER="piper,espeak", STT_PROVIDER="pocketsphinx"
        )
        client = VoiceClient(server.base_url)
        hello = await client.connect("callcenter")
        assert hello["providers"]["tts"] == "piper"
        await client.wait_for("status_update", status="idle")
        since = len(client.events)
        sent_at = time.monotonic()  # the clock the client stamps voiced frames with
        client.send({"type": "text_input", "text": "I forgot my password and cannot log in"})
        await client.wait_for("status_update", since=since, status="speaking", timeout=30)
        first = await client.first_voiced_after(sent_at, timeout=30)
        # Still speaking half a second later: speech, not a click (not the whole reply).
        await client.first_voiced_after(first + 0.5, timeout=10)
        assert client.voiced_frames_after(sent_at) > 20
        assert "provider_fallback" not in client.types(since)  # Piper spoke, not espeak-ng
    finally:
        if client is not None:
            await client.close()
        for engine in (providers.stt, providers.llm, providers.tts):
            await engine.close()
