"""Tools from the agents TOML: HTTP tools (webhooks) and MCP servers.

```toml
[agents.dentist.tools.check_insurance]
description = "Check whether a patient's insurance covers a visit"
url = "https://clinic.example/api/insurance"
parameters = { type = "object", properties = { member_id = { type = "string" } } }
timeout_s = 5
headers = { Authorization = "Bearer ${CLINIC_TOKEN}" }

[[agents.dentist.mcp]]
command = "uvx"
args = ["some-mcp-server"]
```

``${NAME}`` in a header is read from the environment when the file is
loaded; an unset name stops start-up with a message naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .registry import DEFAULT_TOOL_TIMEOUT_S, check_schema

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class HttpToolSpec:
    name: str
    description: str
    url: str
    parameters: dict[str, Any]
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold secrets


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """``command`` + ``args`` (stdio) or ``url`` (streamable HTTP)."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    url: str = ""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S


def http_tools_from(table: Any, where: str, environ: Mapping[str, str]) -> tuple[HttpToolSpec, ...]:
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table of [tools.NAME] tables")
    return tuple(_http_tool(name, t, f"{where}.{name}", environ) for name, t in table.items())


def _http_tool(name: str, t: Any, where: str, environ: Mapping[str, str]) -> HttpToolSpec:
    if not _NAME_RE.match(name):
        raise ValueError(f"{where}: a tool name is 1-64 letters, digits, '_' or '-'")
    if not isinstance(t, dict):
        raise ValueError(f"{where} must be a table")
    unknown = sorted(set(t) - {"description", "url", "parameters", "timeout_s", "headers"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    description = t.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"{where}.description must be a non-empty string")
    url = t.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{where}.url must be an http:// or https:// URL")
    parameters = t.get("parameters", {"type": "object", "properties": {}})
    check_schema(parameters, f"{where}.parameters")
    headers = t.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError(f"{where}.headers must map header names to strings")
    return HttpToolSpec(
        name=name,
        description=description.strip(),
        url=url,
        parameters=parameters,
        timeout_s=_timeout(t, where),
        headers={k: _expand(v, f"{where}.headers.{k}", environ) for k, v in headers.items()},
    )


def mcp_servers_from(
    items: Any, where: str, environ: Mapping[str, str]
) -> tuple[McpServerSpec, ...]:
    if not isinstance(items, list):
        raise ValueError(f"{where} must be an array of tables: [[{where}]]")
    specs = []
    for i, t in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(t, dict):
            raise ValueError(f"{at} must be a table")
        unknown = sorted(set(t) - {"name", "command", "args", "url", "env", "timeout_s"})
        if unknown:
            raise ValueError(f"{at}: unknown field(s) {', '.join(unknown)}")
        command, url = t.get("command", ""), t.get("url", "")
        if bool(command) == bool(url) or not isinstance(command, str) or not isinstance(url, str):
            raise ValueError(f"{at}: give either command (stdio) or url (streamable HTTP)")
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"{at}.url must be an http:// or https:// URL")
        args = t.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{at}.args must be a list of strings")
        env = t.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError(f"{at}.env must map names to strings")
        name = t.get("name", f"mcp{i}")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"{at}.name must be 1-64 letters, digits, '_' or '-'")
        specs.append(
            McpServerSpec(
                name=name,
                command=command,
                args=tuple(args),
                url=url,
                env={k: _expand(v, f"{at}.env.{k}", environ) for k, v in env.items()},
                timeout_s=_timeout(t, at),
            )
        )
    return tuple(specs)


def _timeout(t: dict[str, Any], where: str) -> float:
    value = t.get("timeout_s", DEFAULT_TOOL_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.timeout_s must be a number of seconds")
    if not 0 < value <= MAX_TIMEOUT_S:
        raise ValueError(f"{where}.timeout_s must be above 0 and at most {MAX_TIMEOUT_S:g}")
    return float(value)


def _expand(value: str, where: str, environ: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m[1] not in environ:
            raise ValueError(f"{where} uses ${{{m[1]}}}, which is not set in the environment")
        return environ[m[1]]

    return _ENV_RE.sub(one, value)
