"""The HTTP edge: routes, JSON errors for bad input, capacity."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.voice_client import VoiceClient

MINIMAL_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtpmap:111 opus/48000/2",
        "",
    ]
)


async def _post(base_url: str, data: bytes | str, content_type: str = "application/json"):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base_url}/api/offer", data=data, headers={"Content-Type": content_type}
        ) as response:
            return response.status, await response.json(), dict(response.headers)


async def test_agents_health_metrics_and_page(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base_url}/api/agents") as r:
            agents = await r.json()
        assert {a["id"] for a in agents} >= {"receptionist", "sales", "callcenter"}
        assert all(a["name"] and a["description"] for a in agents)
        async with http.get(f"{server.base_url}/health") as r:
            assert await r.json() == {"status": "healthy", "sessions": 0}
        async with http.get(f"{server.base_url}/metrics") as r:
            text = await r.text()
            assert r.status == 200 and "voice_agent_sessions_active 0.0" in text
        async with http.get(f"{server.base_url}/") as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
            assert 'data-testid="start-button"' in await r.text()
        async with http.get(f"{server.base_url}/api/nothing") as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{}", "text/plain", 415, "unsupported_media_type"),
        ("not json", "application/json", 400, "bad_json"),
        (b"\xff\xfe", "application/json", 400, "bad_json"),
        ("[1, 2]", "application/json", 400, "bad_request"),
        (
            '{"sdp": "x", "type": "answer", "agent_id": "sales"}',
            "application/json",
            400,
            "bad_request",
        ),
        ('{"sdp": "x", "type": "offer"}', "application/json", 400, "bad_request"),
        (
            '{"sdp": "x", "type": "offer", "agent_id": "pirate"}',
            "application/json",
            404,
            "unknown_agent",
        ),
        ('{"sdp": 7, "type": "offer", "agent_id": "sales"}', "application/json", 400, "bad_sdp"),
        (
            '{"sdp": "v=0\\r\\n", "type": "offer", "agent_id": "sales"}',
            "application/json",
            400,
            "bad_sdp",
        ),
        ("x" * (70 * 1024), "application/json", 413, "body_too_large"),
    ],
)
async def test_bad_offers_get_json_errors(server, body, content_type, status, code):
    got_status, payload, _ = await _post(server.base_url, body, content_type)
    assert (got_status, payload["error"]["code"]) == (status, code)
    assert payload["error"]["message"]
    assert server.session_count == 0


async def test_sdp_that_passes_prevalidation_but_aiortc_refuses_is_400(server, leak_check):
    # Shape is right, content is not (no codec aiortc knows, bogus fingerprint).
    broken = MINIMAL_OFFER.replace("opus/48000/2", "nonsense/1/1")
    status, payload, _ = await _post(
        server.base_url, json.dumps({"sdp": broken, "type": "offer", "agent_id": "sales"})
    )
    assert status == 400 and payload["error"]["code"] == "bad_sdp"
    assert server.session_count == 0


async def test_capacity_is_503_with_retry_after(leak_check, server_factory):
    server = await server_factory(max_sessions=1)
    first = VoiceClient(server.base_url)
    second = VoiceClient(server.base_url)
    try:
        await first.connect("sales")
        with pytest.raises(RuntimeError, match="503"):
            await second.connect("sales")
        status, payload, headers = await _post(
            server.base_url,
            json.dumps({"sdp": MINIMAL_OFFER, "type": "offer", "agent_id": "sales"}),
        )
        assert status == 503 and payload["error"]["code"] == "at_capacity"
        assert headers["Retry-After"] == "5"
        assert server.session_count == 1
    finally:
        await first.close()
        await second.close()
