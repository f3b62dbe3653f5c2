"""--workers N: several processes on one port, one server as far as anyone can tell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from bench.common import ServerProcess
from signaling.tokens import mint_token
from tests.integration.hardening import offer_body, post, real_offer
from tests.voice_client import VoiceClient

SECRET = "workers-secret-0123456789abcdef"


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    # A fresh connection each time, so the kernel may pick any worker.
    async with http.get(url, headers={"Connection": "close"}) as r:
        return await r.text()


@pytest.fixture
async def two_workers():
    server = ServerProcess(
        ["-m", "media_server", "--workers", "2", "--max-sessions", "2"],
        {"LOG_LEVEL": "WARNING"},
    )
    try:
        await server.wait_ready(timeout=90)
        yield server
    finally:
        server.stop()


async def test_sessions_health_capacity_and_metrics_span_the_workers(two_workers):
    server = two_workers
    clients = [VoiceClient(server.base_url) for _ in range(3)]
    try:
        await clients[0].connect("sales")
        await clients[1].connect("callcenter")
        with pytest.raises(RuntimeError, match="503"):  # MAX_SESSIONS holds across workers
            await clients[2].connect("sales")
        async with aiohttp.ClientSession() as http:
            healths = {await _get(http, f"{server.base_url}/health") for _ in range(8)}
            assert healths == {'{"status": "healthy", "sessions": 2}'}
            metrics = await _get(http, f"{server.base_url}/metrics")
            assert re.search(r"^voice_agent_sessions_active 2\.0$", metrics, re.M), metrics
        for client in clients[:2]:
            since = len(client.events)
            client.send({"type": "text_input", "text": "hello"})
            final = await client.wait_for("llm_response", since=since, is_final=True, timeout=30)
            assert final["text"]
        for client in clients[:2]:
            client.send({"type": "end_session"})
            await client.wait_for("session_end", timeout=10)
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                if await _get(http, f"{server.base_url}/health") == (
                    '{"status": "healthy", "sessions": 0}'
                ):
                    break
                await asyncio.sleep(0.1)
            assert await _get(http, f"{server.base_url}/health") == (
                '{"status": "healthy", "sessions": 0}'
            )
    finally:
        for client in clients:
            await client.close()


async def test_sigterm_drains_every_worker_then_exits_when_the_calls_end(two_workers):
    server = two_workers
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        await client.wait_for("connection_established")
        server.proc.send_signal(signal.SIGTERM)
        notice = await client.wait_for("notice", timeout=10)
        assert notice["code"] == "draining" and "restarting" in notice["message"]
        async with aiohttp.ClientSession() as http:
            for _ in range(6):  # whichever worker answers, it is draining
                async with http.get(
                    f"{server.base_url}/health", headers={"Connection": "close"}
                ) as r:
                    assert r.status == 503 and (await r.json())["status"] == "draining"
        # The live call goes on: a turn is still answered.
        since = len(client.events)
        client.send({"type": "text_input", "text": "hello"})
        final = await client.wait_for("llm_response", since=since, is_final=True, timeout=30)
        assert final["text"]
        assert server.proc.poll() is None  # still serving it
        ended = time.monotonic()
        client.send({"type": "end_session"})
        await client.wait_for("session_end", timeout=10)
        # No call left: every worker and the parent exit, long before DRAIN_TIMEOUT_S.
        await asyncio.to_thread(server.proc.wait, 30)
        assert server.proc.returncode == 0
        assert time.monotonic() - ended < 30
    finally:
        await client.close()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_workers_share_tokens_and_a_killed_worker_leaves_no_ghosts():
    server = ServerProcess(
        ["-m", "media_server", "--workers", "2", "--max-sessions", "2"],
        {"AUTH_SECRET": SECRET, "RATE_LIMIT_PER_MINUTE": "0"},
    )
    clients = [VoiceClient(server.base_url) for _ in range(2)]
    try:
        await server.wait_ready(timeout=90)
        token = mint_token(SECRET, 60)
        await clients[0].connect("sales", token=token)
        sdp = await real_offer()
        for _ in range(6):  # each on a new connection: either worker may answer
            status, body, _ = await post(server.base_url, offer_body(sdp, token=token))
            assert (status, body["error"]["code"]) == (401, "token_used")
        async with aiohttp.ClientSession() as http:
            assert await _get(http, f"{server.base_url}/health") == (
                '{"status": "healthy", "sessions": 1}'
            )
        # Both workers die without a word (the OOM killer, a crash).
        workers = _children(server.proc.pid)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        # Restarted, and the dead call no longer holds a slot.
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                with contextlib.suppress(aiohttp.ClientError):
                    if await _get(http, f"{server.base_url}/health") == (
                        '{"status": "healthy", "sessions": 0}'
                    ):
                        break
                await asyncio.sleep(0.25)
            assert await _get(http, f"{server.base_url}/health") == (
                '{"status": "healthy", "sessions": 0}'
            )
        await clients[1].connect("sales", token=mint_token(SECRET, 60))
        async with aiohttp.ClientSession() as http:
            metrics = await _get(http, f"{server.base_url}/metrics")
        assert re.search(r"^voice_agent_sessions_active 1\.0$", metrics, re.M), metrics
        assert set(_children(server.proc.pid)).isdisjoint(workers)
    finally:
        for client in clients:
            await client.close()
        server.stop()
