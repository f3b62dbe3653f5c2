"""What must never reach a log line: access tokens and configured secrets.

Tokens travel in URLs (``/?token=...``, ``/api/ice-servers?token=...``) and
so in request lines and ``Referer`` headers; secrets (API keys, AUTH_SECRET,
TURN_SECRET, TURN_PASSWORD) are never logged on purpose, and this makes sure
an exception message or a library's debug line cannot leak one either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_TOKEN_PARAM = re.compile(r"((?:^|[?&;])token=)[^&;#\s\"]*", re.IGNORECASE)
_BEARER = re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    return _BEARER.sub(rf"\1{REDACTED}", _TOKEN_PARAM.sub(rf"\1{REDACTED}", text))


class Redactor:
    """Replaces tokens and every known secret value in a piece of text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        return redact_tokens(text)
