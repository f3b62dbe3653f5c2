"""GET /api/ice-servers: what the page's peer connection is configured with."""

from __future__ import annotations

import aiohttp

from signaling.tokens import mint_token

SECRET = "an-auth-secret-of-some-length"
TURN = "turn:127.0.0.1:3478?transport=udp"


async def _get(url: str, **kwargs) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url, **kwargs) as response:
        assert response.headers["Cache-Control"] == "no-store"  # credentials are per call
        return response.status, await response.json()


async def test_nothing_configured_is_an_empty_list(server):
    status, body = await _get(f"{server.base_url}/api/ice-servers")
    assert (status, body) == (200, {"iceServers": [], "iceTransportPolicy": "all"})


async def test_with_auth_it_needs_an_unspent_token_and_leaves_it_unspent(server_factory):
    server = await server_factory(
        AUTH_SECRET=SECRET, TURN_URLS=TURN, TURN_SECRET="coturn-secret-xyz", ICE_SERVERS="stun:s:1"
    )
    url = f"{server.base_url}/api/ice-servers"
    status, body = await _get(url)
    assert (status, body["error"]["code"]) == (401, "token_required")
    status, body = await _get(url, params={"token": mint_token("some-other-secret-xyz", 60)})
    assert (status, body["error"]["code"]) == (401, "token_invalid")

    token = mint_token(SECRET, 60)
    status, by_query = await _get(url, params={"token": token})
    status2, by_header = await _get(url, headers={"Authorization": f"Bearer {token}"})
    assert status == status2 == 200  # asking twice did not spend it
    assert by_query["iceServers"][0] == {"urls": ["stun:s:1"]}
    turn = by_query["iceServers"][1]
    assert turn["urls"] == [TURN] and turn["username"] != by_header["iceServers"][1]["username"]
    assert "coturn-secret-xyz" not in str(by_query)
