"""A real, small MCP server (the official SDK's MCPServer over stdio) for tests.

Run as ``python -m tests.fakes.mcp_server`` (stdio), or with ``--http PORT``
(streamable HTTP on 127.0.0.1:PORT/mcp). Tools:

- ``clinic_address()``: where the clinic is (a fixed text).
- ``add(a, b)``: a + b, as structured output.
- ``refuse(reason)``: an error result carrying ``reason``.
- ``crash()``: the process exits at once, as a crashing server would.

``MCP_FAKE_MARK`` (environment): a file each start appends a line to, so a
test can count restarts.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("clinic-extras")


@server.tool()
def clinic_address() -> str:
    """Where the clinic is."""
    return "12 Harbour Street, Leith"


@server.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two whole numbers."""
    return {"sum": a + b}


@server.tool()
def refuse(reason: str) -> str:
    """Always fails with the given reason."""
    raise ToolError(reason)


@server.tool()
def crash() -> str:
    """Ends the server process at once."""
    os._exit(3)


if __name__ == "__main__":
    mark = os.environ.get("MCP_FAKE_MARK")
    if mark:
        with open(mark, "a") as f:
            f.write("started\n")
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
