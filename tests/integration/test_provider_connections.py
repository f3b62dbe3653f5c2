"""The cloud providers' HTTP connections, as a turn sees them.

A person pauses longer than httpx's default 5 s keep-alive between turns;
each turn then paid for a new connection (a TLS handshake, against the real
APIs) before its first byte. These talk to the loopback fakes through the
real SDK and httpx.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from media_server.providers.elevenlabs_tts import ElevenLabsTTS
from media_server.providers.openai_llm import OpenAILLM
from media_server.providers.openai_stt import OpenAISTT
from media_server.providers.openai_tts import OpenAITTS
from media_server.types import ChatMessage, ReplyOptions, Utterance
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.mp3_fixture import tone_pcm
from tests.fakes.openai_fake import start_openai_fake

HTTPX_DEFAULT_KEEPALIVE_S = 5.0
PAUSE_S = HTTPX_DEFAULT_KEEPALIVE_S + 0.7


async def one_request_each(stt, llm, openai_tts, eleven_tts) -> None:
    utterance = Utterance(tone_pcm(1.0, 16000), sample_rate=16000, peak_dbfs=-12.0)
    assert (await stt.transcribe(utterance)).text
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    assert [d async for d in llm.stream_reply(messages, ReplyOptions())]
    assert [c async for c in openai_tts.synthesize("Hello there.", "alloy")]
    assert [c async for c in eleven_tts.synthesize("Hello there.", "voice-1")]


@pytest.mark.slow
async def test_connections_outlive_a_pause_between_turns() -> None:
    openai_fake = await start_openai_fake()
    eleven_fake = await start_elevenlabs_fake()
    providers = [
        OpenAISTT(api_key="sk", base_url=openai_fake.base_url),
        OpenAILLM(api_key="sk", base_url=openai_fake.base_url),
        OpenAITTS(api_key="sk", base_url=openai_fake.base_url),
        ElevenLabsTTS(api_key="el", base_url=eleven_fake.base_url),
    ]
    try:
        await one_request_each(*providers)
        first_peers = [r.peer for r in (*openai_fake.requests, *eleven_fake.requests)]
        await asyncio.sleep(PAUSE_S)
        await one_request_each(*providers)
        requests = [*openai_fake.requests, *eleven_fake.requests]
        assert len(requests) == 8
        # Same client port: the same TCP connection, reused after the pause.
        first = {r.path: r.peer for r in requests[:3]} | {
            r.path: r.peer for r in eleven_fake.requests[:1]
        }
        second = {r.path: r.peer for r in openai_fake.requests[3:]} | {
            r.path: r.peer for r in eleven_fake.requests[1:]
        }
        assert None not in first_peers
        assert second == first
    finally:
        for provider in providers:
            await provider.close()
        await openai_fake.close()
        await eleven_fake.close()


def test_warm_up_loads_what_the_first_request_would() -> None:
    # A fresh interpreter: in this one, earlier tests have imported everything.
    # Whatever the first request still has to import costs the event loop
    # 100-250 ms in the middle of somebody's first turn.
    probe = textwrap.dedent(
        """
        import asyncio, sys
        from media_server.providers.elevenlabs_tts import ElevenLabsTTS
        from media_server.providers.openai_llm import OpenAILLM
        from media_server.providers.openai_stt import OpenAISTT
        from media_server.providers.openai_tts import OpenAITTS

        async def main():
            providers = [
                cls(api_key="k", base_url="http://127.0.0.1:9/v1")
                for cls in (OpenAISTT, OpenAILLM, OpenAITTS, ElevenLabsTTS)
            ]
            for provider in providers:
                await provider.warm_up()
            before = set(sys.modules)
            # What a first request imports, without sending one: the pool's
            # async backend and the SDK's stream types.
            import anyio
            anyio.Event()
            import openai._streaming
            print(sorted(set(sys.modules) - before))
            for provider in providers:  # closing a client loads the backend too
                await provider.close()

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
