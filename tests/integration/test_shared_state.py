"""Shared state in a real Redis (started by the test on loopback): tokens,
rate limits and the registry of live calls, shared by two servers."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from signaling.shared import SharedStateUnavailable
from signaling.shared.redis_state import LiveCall, RedisState
from signaling.state import REGISTRY_KEY
from signaling.tokens import mint_token
from tests.integration.hardening import offer_body, post, real_offer
from tests.services.redis import RedisServer
from tests.voice_client import VoiceClient

SECRET = "shared-secret-0123456789abcdef"


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


async def _health(base_url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/health") as r:
        return await r.json()


async def _drop_sessions(server) -> None:
    for session in list(server.app[REGISTRY_KEY]):
        await session.close("test_done")


async def test_redis_spends_a_nonce_once_rates_and_lists_calls(redis):
    state = RedisState(redis.url)
    try:
        expiry = int(time.time()) + 60
        assert await state.spend_nonce(b"nonce-1", expiry) is True
        assert await state.spend_nonce(b"nonce-1", expiry) is False
        assert [await state.take_rate("10.0.0.1", 2) for _ in range(2)] == [0.0, 0.0]
        assert 29.0 < await state.take_rate("10.0.0.1", 2) <= 30.0
        assert await state.take_rate("10.0.0.2", 2) == 0.0
        call = LiveCall("s1", "host-a:8080", 1234, time.time(), "sales")
        await state.calls_started([call])
        assert await state.live_calls() == [call]
        await state.call_ended("s1")
        assert await state.live_calls() == []
    finally:
        await state.close()


async def test_two_servers_on_one_redis_share_tokens_limits_and_calls(redis, server_factory):
    common = dict(redis_url=redis.url, auth_secret=SECRET, connect_timeout_s=5)
    a = await server_factory(rate_limit_per_minute=5, **common)
    b = await server_factory(rate_limit_per_minute=5, **common)
    sdp = await real_offer()
    client = VoiceClient(a.base_url)
    try:
        token = mint_token(SECRET, 60)
        await client.connect("sales", token=token)  # offer 1 (on a)
        # The token opened a call on a: on b it is spent too.
        status, body, _ = await post(b.base_url, offer_body(sdp, token=token))  # offer 2
        assert (status, body["error"]["code"]) == (401, "token_used")
        # b lists the call a answered, from the shared registry.
        for _ in range(40):
            if (await _health(b.base_url)).get("calls_everywhere") == 1:
                break
            await asyncio.sleep(0.25)
        assert await _health(b.base_url) == {
            "status": "healthy",
            "sessions": 0,
            "calls_everywhere": 1,
        }
        # One rate limit for the client, whichever server it asks.
        for base in (a.base_url, b.base_url, a.base_url):  # offers 3-5
            status, body, _ = await post(base, offer_body(sdp))
            assert status == 401, body  # no token, but admitted: counted
        status, body, headers = await post(b.base_url, offer_body(sdp))  # offer 6
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert int(headers["Retry-After"]) >= 1
        # The call ends: it leaves the registry.
        client.send({"type": "end_session"})
        await client.wait_for("session_end", timeout=10)
        for _ in range(40):
            if (await _health(b.base_url)).get("calls_everywhere") == 0:
                break
            await asyncio.sleep(0.25)
        assert (await _health(b.base_url))["calls_everywhere"] == 0
    finally:
        await client.close()


async def test_without_redis_live_calls_go_on_and_new_ones_wait(redis, server_factory):
    server = await server_factory(redis_url=redis.url, connect_timeout_s=5)
    client = VoiceClient(server.base_url)
    sdp = await real_offer()
    try:
        await client.connect("sales")
        redis.stop()
        # The live call does not notice.
        since = len(client.events)
        client.send({"type": "text_input", "text": "hello"})
        final = await client.wait_for("llm_response", since=since, is_final=True, timeout=30)
        assert final["text"]
        # A new call is refused, plainly, with a time to come back.
        status, body, headers = await post(server.base_url, offer_body(sdp))
        assert (status, body["error"]["code"]) == (503, "shared_state_unavailable")
        assert "Redis" not in body["error"]["message"] and headers["Retry-After"] == "5"
        health = await _health(server.base_url)
        assert health["status"] == "healthy" and health["shared_state"] == "unavailable"
        # Redis is back (empty, on the same port): new calls work again.
        redis.start()
        status, body, _ = await post(server.base_url, offer_body(sdp))
        assert status == 200, body
        assert server.session_count == 2
    finally:
        await client.close()
        await _drop_sessions(server)


async def test_an_unreachable_redis_is_a_clear_error_not_a_hang(redis):
    redis.stop()
    state = RedisState(redis.url)
    try:
        # A deadline on the test, not a timing claim: without the client's own
        # connect timeout this would hang until the test is killed.
        async with asyncio.timeout(30):
            with pytest.raises(SharedStateUnavailable, match="redis spend"):
                await state.spend_nonce(b"n", int(time.time()) + 60)
    finally:
        await state.close()
