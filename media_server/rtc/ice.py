"""ICE settings for aiortc: which host candidates to offer and which servers to use.

aioice gathers host candidates from every interface but never offers
127.0.0.1 (AIORTC-NOTES.md), and aiortc falls back to a public STUN server
when given no ``iceServers``. Both are wrong for a server that must work on
loopback in tests and never contact a third party by surprise.
"""

from __future__ import annotations

from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

_original_get_host_addresses = aioice.ice.get_host_addresses


def configure_host_addresses(addresses: tuple[str, ...]) -> None:
    """Offer exactly ``addresses`` as host candidates (process-wide).

    aioice has no per-connection option for this, so its module function is
    replaced; an empty tuple restores aioice's own interface scan.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def rtc_configuration(
    ice_servers: list[dict[str, Any]] | None = None, transport_policy: str = "all"
) -> RTCConfiguration:
    """An explicit (possibly empty) server list: never aiortc's default STUN.

    ``ice_servers`` are RTCIceServer dictionaries, the ones the page gets
    (``media_server.ice_servers``). aiortc uses the first STUN and the first
    TURN URL whose transport it speaks (udp, tcp, or turns: over tcp).
    """
    return RTCConfiguration(
        iceServers=[RTCIceServer(**server) for server in ice_servers or ()],
        iceTransportPolicy=RTCIceTransportPolicy(transport_policy),
    )
