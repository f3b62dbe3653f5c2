"""Signed, short-lived, single-use offer tokens (README "Security").

With ``AUTH_SECRET`` set, ``POST /api/offer`` needs a token minted by
``voice-agent token``. A token is ``urlsafe_b64(expiry ‖ nonce ‖ mac)``
without padding: an 8-byte big-endian Unix expiry, a 16-byte random nonce
and HMAC-SHA256(AUTH_SECRET, expiry ‖ nonce). The MAC is compared in
constant time; a nonce is remembered until its token expires, so a token
opens one session. Tokens never appear in errors or logs (the access log
redacts them, see ``signaling.access_log``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

_EXPIRY = struct.Struct(">Q")
NONCE_BYTES = 16
MAC_BYTES = 32
TOKEN_BYTES = _EXPIRY.size + NONCE_BYTES + MAC_BYTES
TOKEN_CHARS = (TOKEN_BYTES * 4 + 2) // 3  # unpadded base64 length: 75
# Tokens from a clock a little ahead of ours are still fine; much further
# ahead means a forged or misconfigured expiry.
CLOCK_SKEW_S = 60.0
# Used nonces kept at once. Past this, new tokens are refused (fail closed)
# rather than forgetting nonces that could then be replayed.
MAX_REMEMBERED_NONCES = 100_000


class TokenError(Exception):
    """The token is missing or unusable; ``code`` and ``str()`` are client-safe."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()


def mint_token(secret: str, ttl_s: float, *, now: float | None = None) -> str:
    """A fresh token valid for ``ttl_s`` seconds."""
    if not secret:
        raise ValueError("AUTH_SECRET is not set")
    expiry = int((time.time() if now is None else now) + ttl_s)
    payload = _EXPIRY.pack(expiry) + secrets.token_bytes(NONCE_BYTES)
    raw = payload + _mac(secret, payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes | None:
    if len(token) != TOKEN_CHARS or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == TOKEN_BYTES else None


@dataclass(frozen=True, slots=True)
class CheckedToken:
    nonce: bytes
    expiry: int


class TokenVerifier:
    """Checks tokens and remembers used nonces until their expiry (bounded)."""

    def __init__(
        self,
        secret: str,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.time,
        max_nonces: int = MAX_REMEMBERED_NONCES,
    ) -> None:
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_nonces = max_nonces
        self._used: set[bytes] = set()
        self._expiries: list[tuple[int, bytes]] = []  # heap: forget nonces in expiry order

    def __repr__(self) -> str:  # the secret must never reach a log
        return f"TokenVerifier(ttl_s={self._ttl_s:g}, remembered={len(self._used)})"

    @property
    def remembered(self) -> int:
        return len(self._used)

    def check(self, token: object) -> CheckedToken:
        """The token's nonce and expiry if it is genuine, unexpired and unused.

        Does not spend it: call ``spend()`` once the offer is accepted, so a
        token survives a 503 or a bad SDP and can be retried.
        """
        if token is None or token == "":
            raise TokenError("token_required", "This server needs an access token.")
        raw = _decode(token) if isinstance(token, str) else None
        if raw is None:
            raise TokenError("token_invalid", "The access token is not valid.")
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(mac, _mac(self._secret, payload)):
            raise TokenError("token_invalid", "The access token is not valid.")
        (expiry,) = _EXPIRY.unpack(payload[: _EXPIRY.size])
        nonce = payload[_EXPIRY.size :]
        now = self._clock()
        if expiry <= now:
            raise TokenError("token_expired", "The access token has expired; ask for a new one.")
        if expiry > now + self._ttl_s + CLOCK_SKEW_S:
            raise TokenError("token_invalid", "The access token is not valid.")
        if nonce in self._used:
            raise TokenError("token_used", "The access token was already used; ask for a new one.")
        return CheckedToken(nonce, expiry)

    def spend(self, token: CheckedToken) -> None:
        """Remember the token as used until it expires. Raises ``TokenError``
        if it already is, or if the table is full of live nonces (fail closed:
        forgetting one early would let it be replayed)."""
        self._forget_expired()
        if token.nonce in self._used:
            raise TokenError("token_used", "The access token was already used; ask for a new one.")
        if len(self._used) >= self._max_nonces:
            raise TokenError("token_capacity", "Too many sessions were opened; try again later.")
        self._used.add(token.nonce)
        heapq.heappush(self._expiries, (token.expiry, token.nonce))

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            _, nonce = heapq.heappop(self._expiries)
            self._used.discard(nonce)
