"""The wheel as a stranger gets it: built, installed into a fresh venv,
``voice-agent`` run from an empty directory, the page and every file it
loads served from inside the package; and ``uvx --from <wheel>`` works.

Offline by design (the suite runs with no network): uv builds and installs
from its cache, pinned to uv.lock's versions. `uv sync` fills the cache with
the wheels; `.ci/run` also resolves once (`uv pip compile`) so that the
index pages an offline `uv pip install` reads are there too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest

from tests.services.process import free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]
PAGE_DIR = ROOT / "signaling" / "static"
UV_INSTALL = "python3 -m pip install --user uv"
START_TIMEOUT_S = 60.0  # a fresh process loads pocketsphinx and two Silero models


def _run(argv: list[str], **kwargs) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """No VIRTUAL_ENV, no settings of the developer: what a new shell has."""
    keep = ("PATH", "HOME", "LANG", "UV_CACHE_DIR", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | extra


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    uv = require_binary("uv", UV_INSTALL)
    out = tmp_path_factory.mktemp("dist")
    _run([uv, "build", "--wheel", "--offline", "--out-dir", str(out)], cwd=ROOT)
    (built,) = out.glob("voice_agent-*.whl")
    return built


def _references(text: str, base: str) -> set[str]:
    """Same-origin files a page or module loads: src/href and JS imports."""
    found = re.findall(r'(?:src|href)="(/[^"]*)"', text)
    found += re.findall(r'from\s+"(\.[^"]+)"', text)
    return {urljoin(base, ref) for ref in found}


async def _crawl(base_url: str) -> dict[str, bytes]:
    """Every file reachable from / (path -> body); fails on any non-200."""
    bodies: dict[str, bytes] = {}
    queue = ["/"]
    async with aiohttp.ClientSession(base_url) as http:
        while queue:
            path = queue.pop()
            if path in bodies:
                continue
            async with http.get(path) as response:
                assert response.status == 200, f"{path}: {response.status}"
                bodies[path] = await response.read()
            if path == "/" or path.endswith(".js"):
                queue += _references(bodies[path].decode(), path)
    return bodies


async def _wait_listening(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stdout is not None
    async with asyncio.timeout(START_TIMEOUT_S):
        while line := (await process.stdout.readline()).decode():
            lines.append(line)
            if json.loads(line).get("event") == "listening":
                return
    raise AssertionError("voice-agent exited before listening:\n" + "".join(lines))


async def test_the_installed_wheel_serves_the_whole_page(wheel: Path, tmp_path: Path):
    uv = require_binary("uv", UV_INSTALL)
    venv = tmp_path / "venv"
    _run([uv, "venv", "--offline", "--python", sys.executable, str(venv)], env=_clean_env())
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        _run(
            [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"],
            cwd=ROOT,
        )
    )
    _run(
        [
            uv,
            "pip",
            "install",
            "--offline",
            "--python",
            str(venv / "bin" / "python"),
            "-c",
            str(constraints),
            str(wheel),
        ],
        env=_clean_env(),
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "voice-agent"),
        "--port",
        str(port),
        cwd=empty,
        env=_clean_env(ICE_HOST_ADDRESSES="127.0.0.1", LOG_FORMAT="json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        await _wait_listening(process, lines)
        bodies = await _crawl(f"http://127.0.0.1:{port}")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(15):
                out, _ = await process.communicate()
                lines += out.decode().splitlines()
    assert process.returncode == 0
    # LOG_FORMAT=json: everything it wrote is one JSON object a line.
    events = [json.loads(line)["event"] for line in lines]
    # Start-up lines (the agents' database) come before "listening"; each
    # carries an event name, not its message.
    assert "listening" in events and events[-1] == "shutting_down", events
    assert events.index("listening") < events.index("http_request"), events
    assert all(" " not in event for event in events), events
    # Every file of the page was loaded, byte for byte what the source has.
    shipped = {f"/static/{p.relative_to(PAGE_DIR)}" for p in PAGE_DIR.rglob("*") if p.is_file()}
    assert set(bodies) - {"/"} == shipped - {"/static/index.html"}  # served as /
    for path in set(bodies) - {"/"}:
        assert bodies[path] == (PAGE_DIR / path.removeprefix("/static/")).read_bytes(), path
    assert bodies["/"] == (PAGE_DIR / "index.html").read_bytes()
    # Where it was started it wrote its agents' database (the default
    # DATABASE_URL, data/voice-agent.db) and nothing else.
    assert [p.name for p in empty.iterdir()] == ["data"]
    assert {p.name for p in (empty / "data").iterdir()} <= {
        "voice-agent.db",
        "voice-agent.db-wal",
        "voice-agent.db-shm",
        "voice-agent.db-journal",
    }


def test_uvx_runs_the_wheel(wheel: Path, tmp_path: Path):
    uv = require_binary("uv", UV_INSTALL)
    out = _run(
        [
            uv,
            "tool",
            "run",
            "--offline",
            "--isolated",
            "--python",
            sys.executable,
            "--from",
            str(wheel),
            "voice-agent",
            "--help",
        ],
        cwd=tmp_path,
        env=_clean_env(UV_TOOL_DIR=str(tmp_path / "tools")),
    )
    assert "usage: voice-agent" in out and "token" in out
