"""Shared fixtures: loopback-only ICE, running servers, speech, leak checks."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from media_server.config import Settings, load_settings
from media_server.echo.canceller import warm_canceller
from media_server.providers import build_providers
from media_server.providers.base import Providers
from media_server.rtc.ice import configure_host_addresses
from signaling.app import REGISTRY_KEY, create_app
from tests.audio_fixtures import speech_48k as speech_48k  # re-export; bench/ imports it there
from tests.leaks import Snapshot, wait_back_to

_TEST_DATA_DIR = tempfile.mkdtemp(prefix="voice-agent-test-data-")
atexit.register(shutil.rmtree, _TEST_DATA_DIR, ignore_errors=True)

# Every peer in the suite, server and client, offers 127.0.0.1 only (DESIGN.md §9).
configure_host_addresses(("127.0.0.1",))


def make_settings(**overrides: Any) -> Settings:
    """Settings from defaults plus overrides only: the developer's environment
    and .env never leak into a test."""
    # The server offers loopback only, like every peer in the suite
    # (create_app installs the server's host addresses process-wide).
    overrides.setdefault("ICE_HOST_ADDRESSES", "127.0.0.1")
    # The agents' database of a test run lives in its own directory, never the checkout's.
    if not any(k.upper() == "DATABASE_URL" for k in overrides):  # a test's own wins
        overrides["DATABASE_URL"] = f"sqlite:///{_TEST_DATA_DIR}/voice-agent.db"
    return load_settings({k: str(v) for k, v in overrides.items()}, environ={}, dotenv_path=None)


@functools.cache
def embedded_providers() -> Providers:
    """One set of offline engines for the whole run (pocketsphinx takes ~1 s to load)."""
    return build_providers(make_settings())


@dataclass
class RunningServer:
    app: web.Application
    runner: web.AppRunner
    base_url: str

    @property
    def session_count(self) -> int:
        return len(self.app[REGISTRY_KEY])

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(settings: Settings, *, providers: Providers | None = None) -> RunningServer:
    app = create_app(settings, providers=providers or embedded_providers())
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningServer(app, runner, f"http://127.0.0.1:{port}")


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Awaitable[RunningServer]]]:
    started: list[RunningServer] = []

    async def factory(providers: Providers | None = None, **overrides: Any) -> RunningServer:
        server = await start_server(make_settings(**overrides), providers=providers)
        started.append(server)
        return server

    yield factory
    for server in started:
        await server.close()


@pytest.fixture
async def server(server_factory) -> RunningServer:
    return await server_factory()


@pytest.fixture
async def leak_check() -> AsyncIterator[Snapshot]:
    """Fails the test if it leaves tasks, fds or UDP sockets behind."""
    embedded_providers()  # engine threads belong to the run, not to a test
    warm_canceller()  # so does the echo canceller's native runtime (its threads and fds)
    base = Snapshot.take()
    yield base
    excess = await wait_back_to(base, timeout=10.0, thread_slack=0)
    assert not excess, f"resources left behind: {excess}"
