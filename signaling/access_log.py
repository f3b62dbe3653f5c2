"""An aiohttp access log that never writes an access token.

The page takes its token from ``/?token=...``, so the token would otherwise
land in the access log twice: in the request line of ``GET /`` and in the
``Referer`` of every request the page makes next.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from media_server.redaction import redact_tokens


class RedactingAccessLogger(AccessLogger):
    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, redact_tokens(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]
