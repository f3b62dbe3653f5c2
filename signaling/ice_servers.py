"""GET /api/ice-servers: the STUN and TURN servers the page's peer uses.

With ``AUTH_SECRET`` set only a holder of a valid, unspent token gets them
(TURN credentials are worth stealing: a relay is bandwidth). The token is
checked, not spent: the offer that follows spends it. It comes as
``?token=`` or ``Authorization: Bearer``; the access log redacts the first.
"""

from __future__ import annotations

from aiohttp import web

from signaling.state import ICE_SERVERS_KEY, TOKENS_KEY, json_error
from signaling.tokens import TokenError, TokenVerifier


def _token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token")


async def ice_servers(request: web.Request) -> web.Response:
    verifier: TokenVerifier | None = request.app[TOKENS_KEY]
    if verifier is not None:
        try:
            verifier.check(_token(request))
        except TokenError as exc:
            return json_error(
                401, exc.code, str(exc), **{"WWW-Authenticate": 'Bearer realm="voice-agent"'}
            )
    ice = request.app[ICE_SERVERS_KEY]
    return web.json_response(
        {"iceServers": ice.for_call(), "iceTransportPolicy": ice.transport_policy}
    )
