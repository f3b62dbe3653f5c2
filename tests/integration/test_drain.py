"""SIGTERM drains: no new calls, live calls told and let go on, then ended
(DRAIN_TIMEOUT_S, or at once on a second signal). A real server process."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from bench.common import ServerProcess
from tests.voice_client import VoiceClient


async def _server(**env: str) -> ServerProcess:
    server = ServerProcess(["-m", "media_server"], {"LOG_LEVEL": "WARNING", **env})
    await server.wait_ready(timeout=90)
    return server


async def test_a_drain_refuses_new_calls_and_ends_the_rest_at_its_deadline():
    server = await _server(DRAIN_TIMEOUT_S="3")
    clients = [VoiceClient(server.base_url) for _ in range(3)]
    try:
        for client in clients[:2]:
            await client.connect("sales")
            await client.wait_for("connection_established")
        server.proc.send_signal(signal.SIGTERM)
        for client in clients[:2]:
            assert (await client.wait_for("notice", timeout=10))["code"] == "draining"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.base_url}/health") as r:
                assert r.status == 503
                assert await r.json() == {"status": "draining", "sessions": 2}
        with pytest.raises(RuntimeError, match="503"):  # a new call goes elsewhere
            await clients[2].connect("sales")
        clients[0].send({"type": "end_session"})  # one person finishes in time
        assert (await clients[0].wait_for("session_end", timeout=10))["reason"] == "client_ended"
        # The other is still talking at the deadline: ended, and told why.
        end = await clients[1].wait_for("session_end", timeout=15)
        assert end["reason"] == "shutdown"
        await asyncio.to_thread(server.proc.wait, 15)
        assert server.proc.returncode == 0
    finally:
        for client in clients:
            await client.close()
        server.stop()


async def test_a_second_sigterm_ends_every_call_at_once():
    server = await _server()  # the default drain: 300 s
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        await client.wait_for("connection_established")
        server.proc.send_signal(signal.SIGTERM)
        await client.wait_for("notice", timeout=10)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert (await client.wait_for("session_end", timeout=15))["reason"] == "shutdown"
        await asyncio.to_thread(server.proc.wait, 15)
        assert server.proc.returncode == 0
        assert time.monotonic() - started < 15  # not the 300 s drain
    finally:
        await client.close()
        server.stop()
