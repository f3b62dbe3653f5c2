"""Phone stream tokens across workers: spent once in the shared state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from signaling.app import create_app
from tests.conftest import RunningServer, embedded_providers, make_settings
from tests.fakes.phone_client import PhoneClient, stream_of_twiml
from tests.fakes.pipeline import wait_until
from tests.integration.test_phone import AUTH_TOKEN, post_webhook


async def _worker(settings, shared_db) -> RunningServer:
    """One of two workers sharing the workers' file (as ``--workers 2`` does)."""
    app = create_app(settings, providers=embedded_providers(), shared_db=shared_db)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningServer(app, runner, f"http://127.0.0.1:{port}")


async def test_a_stream_token_opens_one_call_across_workers(tmp_path, leak_check):
    settings = make_settings(twilio_auth_token=AUTH_TOKEN)
    a = await _worker(settings, tmp_path / "shared.db")
    b = await _worker(settings, tmp_path / "shared.db")
    try:
        _, twiml = await post_webhook(a.base_url)
        url, params = stream_of_twiml(twiml)
        on_b = PhoneClient("twilio")  # another worker takes the stream
        await on_b.connect(url.replace(a.base_url[7:], b.base_url[7:]), params)
        await wait_until(lambda: b.session_count == 1, timeout=5)
        await on_b.hang_up()
        await wait_until(lambda: b.session_count == 0, timeout=5)
        replay = PhoneClient("twilio")  # the worker that minted it never saw it spent
        await replay.connect(url, params)
        await asyncio.wait_for(replay.closed.wait(), 5)
        await replay.close()
        assert replay.close_code == 1008 and a.session_count == 0
    finally:
        await a.close()
        await b.close()
