"""The client's address behind a reverse proxy (``TRUSTED_PROXIES``).

A proxy's clients all arrive from the proxy's address, so the per-IP rate
limit would count them as one. When, and only when, the connection comes
from a trusted proxy, the client is read from the headers the proxy set:
``X-Forwarded-For`` through aiohttp-remotes' ``XForwardedFiltered``, else
RFC 7239 ``Forwarded`` as aiohttp parses it. Either way the list is read
from the right, skipping trusted proxies: the first address that is not
one is the client (what a client wrote itself sits further left and is
never believed). From anyone else the headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import hdrs, web
from aiohttp_remotes import XForwardedFiltered

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None


def forwarded_node_address(node: str | None) -> Address | None:
    """The IP of an RFC 7239 node (``192.0.2.1``, ``192.0.2.1:80``, ``[::1]:80``);
    None for ``unknown``, an obfuscated ``_name`` or anything else."""
    if not node:
        return None
    if node.startswith("["):
        return _address(node[1 : node.find("]")] if "]" in node else None)
    return _address(node.rsplit(":", 1)[0] if node.count(":") == 1 else node)


class TrustedProxies:
    def __init__(self, proxies: Sequence[str]) -> None:
        self._networks: list[Network] = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self._x_forwarded = XForwardedFiltered(self._networks)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self._networks)

    def client_from_forwarded(self, elements: Sequence[Mapping[str, str]]) -> Address | None:
        """The right-most ``for=`` that is not a trusted proxy (the left-most
        if all are); None if the chain breaks on a node we cannot read."""
        client = None
        for element in reversed(elements):
            client = forwarded_node_address(element.get("for"))
            if client is None or not self.trusts(client):
                return client
        return client

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.trusts(_address(request.remote)):
            return await handler(request)
        if hdrs.X_FORWARDED_FOR in request.headers:
            return await self._x_forwarded.middleware(request, handler)
        client = self.client_from_forwarded(request.forwarded)
        if client is not None:
            request = request.clone(remote=str(client))
        return await handler(request)
