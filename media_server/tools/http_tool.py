"""Custom HTTP tools (webhooks): the call's arguments POSTed as JSON to a URL.

The arguments were checked against the tool's schema before we get here
(registry.py). A 2xx answer goes back to the model as it came (JSON or
text, cut to a bound); a 4xx/5xx, a refused connection or the deadline
becomes an error result the model can explain. One aiohttp client session
serves every HTTP tool of the process.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from .config import HttpToolSpec
from .registry import MAX_RESULT_CHARS, Tool, ToolFailed, ToolResult

log = logging.getLogger(__name__)

USER_AGENT = "voice-agent-tools/1"


class HttpTools:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    def tool(self, spec: HttpToolSpec) -> Tool:
        async def run(arguments: dict[str, Any]) -> ToolResult:
            return await self._post(spec, arguments)

        return Tool(spec.name, spec.description, spec.parameters, run, timeout_s=spec.timeout_s)

    async def _post(self, spec: HttpToolSpec, arguments: dict[str, Any]) -> ToolResult:
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        try:
            async with self._client().post(
                spec.url, json=arguments, headers=spec.headers, timeout=timeout
            ) as response:
                body = await response.content.read(MAX_RESULT_CHARS * 4)
                status = response.status
        except TimeoutError:
            raise ToolFailed(f"{spec.name} did not answer within {spec.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            log.warning("tool %s: %s", spec.name, type(exc).__name__)
            raise ToolFailed(f"{spec.name} could not be reached") from None
        text = body.decode("utf-8", errors="replace").strip()
        if status >= 400:
            log.warning("tool %s: HTTP %d", spec.name, status)
            detail = f": {text[:200]}" if text else ""
            raise ToolFailed(f"{spec.name} answered HTTP {status}{detail}")
        try:
            content = json.dumps(json.loads(text)) if text else '""'
        except json.JSONDecodeError:
            content = json.dumps(text)
        return ToolResult(True, content, _summary(spec.name, text))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _summary(name: str, text: str) -> str:
    """A line for the page: the answer's ``summary`` field if it has one."""
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("summary"), str):
        return answer["summary"][:200]
    return f"{name}: done"
