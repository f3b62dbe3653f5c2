"""The ICE servers of one call: STUN as configured, TURN with credentials.

Served to the page by ``GET /api/ice-servers`` and used by the server's own
peer, so both ends reach the same relays. With ``TURN_SECRET`` every call
gets fresh credentials the TURN REST way (what coturn's ``use-auth-secret``
checks): the username is ``<unix expiry>:<random>``, the credential
base64(HMAC-SHA1(secret, username)). Nothing is stored: the TURN server
recomputes the MAC and refuses the username once its expiry has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from media_server.config import Settings

# RTCIceServer as the W3C spec and aiortc spell it.
IceServerDict = dict[str, Any]


def turn_rest_credentials(secret: str, ttl_s: float, now: float) -> tuple[str, str]:
    """(username, credential) valid until ``now + ttl_s``."""
    username = f"{int(now + ttl_s)}:{secrets.token_hex(8)}"
    mac = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(mac).decode("ascii")


class IceServers:
    """What ``RTCConfiguration.iceServers`` holds for one call, on both ends."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._stun = settings.ice_servers
        self._turn = settings.turn_urls
        self._secret = settings.turn_secret
        self._ttl_s = settings.turn_ttl_s
        self._username = settings.turn_username
        self._password = settings.turn_password
        self.transport_policy = settings.ice_transport_policy
        self._clock = clock

    def __repr__(self) -> str:  # credentials must never reach a log
        return f"IceServers(stun={self._stun!r}, turn={self._turn!r})"

    def for_call(self) -> list[IceServerDict]:
        """An empty list when nothing is configured: never a public STUN server."""
        servers: list[IceServerDict] = []
        if self._stun:
            servers.append({"urls": list(self._stun)})
        if self._turn:
            if self._secret:
                username, credential = turn_rest_credentials(
                    self._secret, self._ttl_s, self._clock()
                )
            else:
                username, credential = self._username, self._password
            servers.append(
                {"urls": list(self._turn), "username": username, "credential": credential}
            )
        return servers
