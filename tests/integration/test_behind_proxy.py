"""TRUSTED_PROXIES behind a real nginx: the rate limit counts each client apart.

Clients come from distinct loopback addresses (127.0.0.2, .3, …: all of
127/8 is the loopback interface), nginx from 127.0.0.1. An offer whose body
is `{}` passes admission (the rate limit) and is then refused as a 400, so
no WebRTC is needed to count.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.services.nginx import nginx

LIMIT = 2


async def _offer_statuses(url: str, source: str, n: int, headers=None) -> list[int]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        statuses = []
        for _ in range(n):
            async with http.post(f"{url}/api/offer", json={}, headers=headers) as response:
                statuses.append(response.status)
        return statuses


async def test_each_client_behind_nginx_has_its_own_rate_limit(server_factory, tmp_path: Path):
    trusting = await server_factory(RATE_LIMIT_PER_MINUTE=LIMIT, TRUSTED_PROXIES="127.0.0.1")
    naive = await server_factory(RATE_LIMIT_PER_MINUTE=LIMIT)
    upstreams = [
        (trusting.base_url, "x-forwarded-for"),
        (trusting.base_url, "forwarded"),
        (naive.base_url, "x-forwarded-for"),
    ]
    with nginx(tmp_path, upstreams) as (via_xff, via_forwarded, via_naive):
        spent, refused = [400] * LIMIT, [429]
        # X-Forwarded-For: one client uses up its allowance, the next has its own.
        assert await _offer_statuses(via_xff, "127.0.0.2", LIMIT + 1) == spent + refused
        assert await _offer_statuses(via_xff, "127.0.0.3", 1) == [400]
        # A client cannot pick its address: what it wrote itself is left of
        # what nginx appended, and the right-most untrusted entry counts.
        lie = {"X-Forwarded-For": "198.51.100.7"}
        assert await _offer_statuses(via_xff, "127.0.0.2", 1, lie) == refused
        # RFC 7239 Forwarded, the same way.
        assert await _offer_statuses(via_forwarded, "127.0.0.4", LIMIT + 1) == spent + refused
        assert await _offer_statuses(via_forwarded, "127.0.0.5", 1) == [400]
        # Without TRUSTED_PROXIES every client is nginx: one shared allowance.
        assert await _offer_statuses(via_naive, "127.0.0.6", LIMIT) == spent
        assert await _offer_statuses(via_naive, "127.0.0.7", 1) == refused

    # Straight to the server, not through a trusted proxy, the headers are
    # ignored: the peer address is the client.
    direct = {"X-Forwarded-For": "127.0.0.9", "Forwarded": "for=127.0.0.9"}
    assert await _offer_statuses(trusting.base_url, "127.0.0.8", LIMIT + 1, direct) == (
        spent + refused
    )
    assert await _offer_statuses(trusting.base_url, "127.0.0.9", 1) == [400]
