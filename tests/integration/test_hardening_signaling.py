"""The HTTP edge under bad input and abuse: every refusal is a JSON 4xx (never
a 5xx), comes before any peer connection is made, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from signaling.app import REGISTRY_KEY
from signaling.tokens import mint_token
from tests.integration.hardening import (
    PeerConnectionCounter,
    malformed_offers,
    offer_body,
    post,
    real_offer,
)
from tests.voice_client import VoiceClient

SECRET = "a-test-secret-of-some-length"


@pytest.fixture
def pcs(monkeypatch) -> PeerConnectionCounter:
    return PeerConnectionCounter(monkeypatch)


def assert_json_error(status: int, body, expected_status: int, code: str | None = None) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["message"] and body["error"]["code"]
    if code is not None:
        assert body["error"]["code"] == code


async def _drop_sessions(server) -> None:
    """End accepted sessions whose client never connects (faster than the deadline)."""
    for session in list(server.app[REGISTRY_KEY]):
        await session.close("test_done")


# ---- body and content type ------------------------------------------------------


async def test_oversized_body_is_413_on_the_header_alone(server, pcs, leak_check):
    """A client announcing 10 MB gets 413 before it has sent 1 KB of it."""
    host, port = server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/offer HTTP/1.1\r\n"
            b"Host: " + f"{host}:{port}".encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n" + b"{" + b" " * 1000
        )
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
            body = json.loads(await reader.readexactly(int(headers["Content-Length"])))
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.startswith("HTTP/1.1 413")
    assert headers.get("Connection", "").lower() == "close"
    assert body["error"]["code"] == "body_too_large"
    assert pcs.created == 0


async def test_chunked_body_over_the_cap_is_413(server, pcs, leak_check):
    async def chunks():
        for _ in range(100):
            yield b"x" * 1024

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.base_url}/api/offer",
            data=chunks(),
            headers={"Content-Type": "application/json"},
        ) as response:
            assert_json_error(response.status, await response.json(), 413, "body_too_large")
    assert pcs.created == 0


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_offer_must_be_json(server, pcs, content_type):
    status, body, _ = await post(server.base_url, offer_body("v=0"), content_type=content_type)
    assert_json_error(status, body, 415, "unsupported_media_type")
    assert pcs.created == 0


# ---- the 200 malformed offers --------------------------------------------------------


def _fixed_nasties(real: str) -> list[tuple[str, bytes | str, str | None]]:
    no_fingerprint = "".join(
        line for line in real.splitlines(True) if not line.startswith("a=fingerprint:")
    )
    return [
        ("empty", b"", "application/json"),
        ("whitespace", b"  \r\n ", "application/json"),
        ("not json", b"sdp=v%3D0", "application/json"),
        ("truncated json", offer_body(real)[:-10], "application/json"),
        ("json array", b"[1, 2, 3]", "application/json"),
        ("json string", b'"offer"', "application/json"),
        ("json null", b"null", "application/json"),
        ("deep json", b"[" * 50_000 + b"]" * 50_000, "application/json"),
        ("sdp null", offer_body(None), "application/json"),
        ("sdp number", offer_body(12), "application/json"),
        ("sdp list", offer_body([real]), "application/json"),
        ("sdp object", offer_body({"sdp": real}), "application/json"),
        ("type answer", json.dumps({"sdp": real, "type": "answer", "agent_id": "sales"}), None),
        ("type number", json.dumps({"sdp": real, "type": 1, "agent_id": "sales"}), None),
        ("no type", json.dumps({"sdp": real, "agent_id": "sales"}), None),
        ("agent list", offer_body(real, ["sales"]), None),
        ("agent empty", offer_body(real, ""), None),
        ("huge by length", b"{" + b" " * (1024 * 1024) + b"}", None),
        ("huge sdp", offer_body(real + "a=x\r\n" * 20_000), None),
        ("NUL in sdp", offer_body(real.replace("a=setup", "a=se\x00tup")), None),
        ("raw NUL bytes", offer_body(real).encode().replace(b"a=setup", b"a=se\x00tup"), None),
        ("bad utf-8", offer_body(real).encode().replace(b"s=-", b"s=\xff\xfe\xc0"), None),
        ("lone surrogate", offer_body(real).replace("s=-", "s=\\ud800"), None),
        ("10k lines LF", offer_body("v=0\n" + "a=x\n" * 10_000), None),
        ("10k lines CRLF", offer_body("v=0\r\n" + "a=x\r\n" * 10_000), None),
        ("long line", offer_body(real + "a=" + "x" * 5000 + "\r\n"), None),
        ("no audio", offer_body(real.replace("m=audio", "m=video")), None),
        ("no fingerprint", offer_body(no_fingerprint), None),
        ("bad setup", offer_body(real.replace("a=setup:actpass", "a=setup:bogus")), None),
        ("form body", b"sdp=x&type=offer", "application/x-www-form-urlencoded"),
        ("xml", b"<offer/>", "text/xml"),
    ]


async def test_two_hundred_malformed_offers_get_json_4xx(leak_check, server_factory, pcs):
    server = await server_factory(rate_limit_per_minute=0, connect_timeout_s=2)
    real = await real_offer()
    cases: list[tuple[str, bytes | str, str | None]] = _fixed_nasties(real)
    cases += [
        (f"mutation: {name}", offer_body(sdp), None)
        for name, sdp in malformed_offers(real, 200 - len(cases))
    ]
    assert len(cases) == 200
    statuses: dict[int, int] = {}
    accepted = []
    async with aiohttp.ClientSession() as http:
        for description, data, content_type in cases:
            headers = {"Content-Type": content_type or "application/json"}
            async with http.post(
                f"{server.base_url}/api/offer", data=data, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200:
                    accepted.append(description)
                    continue
                assert response.status in (400, 413, 415), (description, response.status, body)
                assert_json_error(response.status, body, response.status)
        await _drop_sessions(server)
        assert not accepted, f"accepted as valid: {accepted}"
        async with http.get(f"{server.base_url}/health") as response:
            assert await response.json() == {"status": "healthy", "sessions": 0}
        async with http.get(f"{server.base_url}/metrics") as response:
            metrics = await response.text()
    assert not [s for s in statuses if s >= 500], statuses
    assert 'voice_agent_offers_rejected_total{status="500"}' not in metrics
    # The mutations that got past pre-validation reached aiortc and were refused
    # there: the broad catch at the edge really was exercised.
    assert pcs.created > 20, pcs.created
    assert server.session_count == 0


# ---- capacity, rate, origin, tokens: refused before a peer connection exists ---------


async def test_capacity_refuses_without_a_peer_connection(leak_check, server_factory, pcs):
    server = await server_factory(max_sessions=1)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        assert pcs.created == 1
        status, body, headers = await post(server.base_url, offer_body(await real_offer()))
        assert_json_error(status, body, 503, "at_capacity")
        assert int(headers["Retry-After"]) >= 1
        assert pcs.created == 1 and server.session_count == 1
    finally:
        await client.close()


async def test_rate_limit_is_per_ip_with_retry_after(leak_check, server_factory, pcs):
    server = await server_factory(rate_limit_per_minute=3)
    bad = offer_body("v=0\r\n")  # refused by pre-validation: no peer connection either way
    for _ in range(3):
        status, body, _ = await post(server.base_url, bad)
        assert_json_error(status, body, 400, "bad_sdp")
    status, body, headers = await post(server.base_url, offer_body(await real_offer()))
    assert_json_error(status, body, 429, "rate_limited")
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert headers.get("Connection", "").lower() == "close"
    assert pcs.created == 0 and server.session_count == 0


async def test_foreign_origin_is_403_and_same_origin_connects(leak_check, server_factory, pcs):
    server = await server_factory(connect_timeout_s=2)
    offer = offer_body(await real_offer())
    host = server.base_url.removeprefix("http://")
    for origin in ("http://evil.example", "null", f"http://{host.split(':')[0]}:1"):
        status, body, _ = await post(server.base_url, offer, headers={"Origin": origin})
        assert_json_error(status, body, 403, "forbidden_origin")
    assert pcs.created == 0
    status, body, _ = await post(server.base_url, offer, headers={"Origin": f"http://{host}"})
    assert status == 200 and body["type"] == "answer"
    status, body, _ = await post(server.base_url, offer)  # no Origin: a script, allowed
    assert status == 200
    assert pcs.created == 2
    await _drop_sessions(server)


async def test_allowed_origins_list(leak_check, server_factory, pcs):
    server = await server_factory(
        allowed_origins="https://app.example, http://127.0.0.1:3000", connect_timeout_s=2
    )
    offer = offer_body(await real_offer())
    status, _, _ = await post(server.base_url, offer, headers={"Origin": "https://app.example"})
    assert status == 200
    own = server.base_url  # the list replaces same-origin: only what it names
    status, body, _ = await post(server.base_url, offer, headers={"Origin": own})
    assert_json_error(status, body, 403, "forbidden_origin")
    assert pcs.created == 1
    await _drop_sessions(server)


async def test_cors_only_for_listed_foreign_origins(server_factory):
    server = await server_factory(allowed_origins="https://app.example")
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with aiohttp.ClientSession() as http:
        url = f"{server.base_url}/api/offer"
        async with http.options(url, headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "POST" in r.headers["Access-Control-Allow-Methods"].split(", ")
            assert "content-type" in r.headers["Access-Control-Allow-Headers"].lower()
        async with http.options(url, headers={**preflight, "Origin": "https://evil.example"}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with http.get(
            f"{server.base_url}/api/agents", headers={"Origin": "https://app.example"}
        ) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    default = await server_factory()  # same origin only: no CORS at all
    async with aiohttp.ClientSession() as http:
        url = f"{default.base_url}/api/offer"
        async with http.options(url, headers=preflight) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers


async def test_tokens_are_required_single_use_and_never_echoed(
    leak_check, server_factory, pcs, caplog
):
    server = await server_factory(auth_secret=SECRET, token_ttl_s=60, connect_timeout_s=2)
    sdp = await real_offer()

    async def attempt(token, expected: int, code: str | None = None):
        extra = {} if token is None else {"token": token}
        status, body, headers = await post(server.base_url, offer_body(sdp, **extra))
        if expected == 200:
            assert status == 200, body
        else:
            assert_json_error(status, body, expected, code)
            assert "WWW-Authenticate" in headers
        if isinstance(token, str) and token:
            assert token not in json.dumps(body)
        return body

    await attempt(None, 401, "token_required")
    await attempt("", 401, "token_required")
    await attempt("x" * 75, 401, "token_invalid")
    await attempt(mint_token("some-other-secret-xyz", 60), 401, "token_invalid")
    await attempt(mint_token(SECRET, 60, now=time.time() - 120), 401, "token_expired")
    assert pcs.created == 0

    token = mint_token(SECRET, 60)
    # A bad offer with a good token: refused, and the token is not spent.
    status, body, _ = await post(server.base_url, offer_body("v=0\r\n", token=token))
    assert_json_error(status, body, 400, "bad_sdp")
    await attempt(token, 200)
    await attempt(token, 401, "token_used")
    assert pcs.created == 1
    await _drop_sessions(server)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged and SECRET not in logged


async def test_a_token_survives_a_503(leak_check, server_factory, pcs):
    server = await server_factory(auth_secret=SECRET, max_sessions=1, connect_timeout_s=2)
    sdp = await real_offer()
    first = await post(server.base_url, offer_body(sdp, token=mint_token(SECRET, 60)))
    assert first[0] == 200
    token = mint_token(SECRET, 60)
    status, body, _ = await post(server.base_url, offer_body(sdp, token=token))
    assert_json_error(status, body, 503, "at_capacity")
    await _drop_sessions(server)
    status, body, _ = await post(server.base_url, offer_body(sdp, token=token))
    assert status == 200, body
    assert pcs.created == 2
    await _drop_sessions(server)


async def test_no_offers_while_shutting_down(leak_check, server_factory, pcs):
    server = await server_factory()
    await server.app[REGISTRY_KEY].close_all("shutdown")
    status, body, headers = await post(server.base_url, offer_body(await real_offer()))
    assert_json_error(status, body, 503, "shutting_down")
    assert headers["Retry-After"] and pcs.created == 0


async def test_security_headers(server):
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/api/agents", "/health"):
            async with http.get(f"{server.base_url}{path}") as response:
                assert response.headers["Referrer-Policy"] == "no-referrer"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(f"{server.base_url}/api/agents") as response:
            assert response.headers["Cache-Control"] == "no-store"
