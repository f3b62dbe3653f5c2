"""50 connect / turn / disconnect cycles: tasks, threads, fds and UDP sockets
come back to their baseline and memory stays flat (RSS growth < 15 MB).

Turns are typed (no speech recognition) and answered through the real
``openai`` SDK by the loopback fake, with a short reply and 0.2 s of speech,
so a cycle takes about a second. Half the clients say ``end_session``, the
other half just close their peer connection.
"""

from __future__ import annotations

import asyncio
import gc
import time

from media_server.providers.base import Providers
from media_server.providers.openai_llm import OpenAILLM
from media_server.providers.openai_tts import OpenAITTS
from tests.conftest import embedded_providers
from tests.fakes.openai_fake import start_openai_fake
from tests.leaks import Snapshot, wait_back_to
from tests.voice_client import VoiceClient

CYCLES = 50
WARM_UP = 3
RSS_BUDGET_MB = 15.0
KEY = "sk-test-cycles-0123456789"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_cycle(base_url: str, server, n: int) -> None:
    client = VoiceClient(base_url)
    try:
        await client.connect("receptionist")
        since = len(client.events)
        client.send({"type": "text_input", "text": f"Hello number {n}"})
        await client.wait_for("turn_metrics", since=since, timeout=20)
        await client.wait_for("status_update", since=since + 1, status="idle", timeout=10)
        if n % 2 == 0:
            client.send({"type": "end_session"})
            end = await client.wait_for("session_end", since=since, timeout=10)
            assert end["reason"] == "client_ended"
    finally:
        await client.close()  # odd cycles: no goodbye, the transport just closes
    async with asyncio.timeout(10):
        while server.session_count:  # noqa: ASYNC110 - polling plain state
            await asyncio.sleep(0.02)


async def test_fifty_cycles_leave_nothing_behind(leak_check, server_factory, record_property):
    fake = await start_openai_fake(api_key=KEY, reply="Okay.", speech_seconds=0.2)
    providers = Providers(
        stt=embedded_providers().stt,  # typed turns never use it
        llm=OpenAILLM(api_key=KEY, base_url=fake.base_url),
        tts=OpenAITTS(api_key=KEY, base_url=fake.base_url),
    )
    try:
        server = await server_factory(providers=providers, rate_limit_per_minute=0)
        for n in range(WARM_UP):  # pools, codecs, caches: what a first session creates once
            await one_cycle(server.base_url, server, n)
        gc.collect()
        base = Snapshot.take()
        rss_before = rss_mb()
        start = time.monotonic()
        for n in range(CYCLES):
            await one_cycle(server.base_url, server, n)
        took = time.monotonic() - start
        gc.collect()
        excess = await wait_back_to(base, timeout=10.0)
        growth = rss_mb() - rss_before
        record_property("rss_growth_mb", round(growth, 1))
        print(
            f"\n{CYCLES} cycles in {took:.1f} s: RSS {rss_before:.1f} -> "
            f"{rss_before + growth:.1f} MB (+{growth:.1f} MB); excess {excess or 'none'}"
        )
        assert not excess, f"resources left after {CYCLES} cycles: {excess}"
        assert growth < RSS_BUDGET_MB, f"RSS grew {growth:.1f} MB over {CYCLES} cycles"
        assert server.session_count == 0
    finally:
        await providers.llm.close()
        await providers.tts.close()
        await fake.close()
