"""A bare aiortc echo server: the baseline our voice server is compared with.

It answers offers exactly like the voice server (same route, same ICE
settings) and sends each peer's audio straight back, so a benchmark can
measure what plain aiortc costs (transport delay, CPU per session, late
frames) in the same run as our server.

    uv run python -m bench.echo_server --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription

from media_server.ice import configure_host_addresses, rtc_configuration

PCS_KEY = web.AppKey("pcs", set)


async def offer(request: web.Request) -> web.Response:
    body = await request.json()
    pc = RTCPeerConnection(configuration=rtc_configuration(()))
    request.app[PCS_KEY].add(pc)

    @pc.on("track")
    def on_track(track) -> None:
        pc.addTrack(track)  # the sender pulls frames straight from the receiver

    @pc.on("datachannel")
    def on_datachannel(channel) -> None:
        channel.send('{"type":"connection_established","session_id":"echo"}')

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            request.app[PCS_KEY].discard(pc)
            await pc.close()

    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return web.json_response(
        {"sdp": pc.localDescription.sdp, "type": "answer", "session_id": "echo"}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy", "sessions": len(request.app[PCS_KEY])})


async def _close_all(app: web.Application) -> None:
    for pc in list(app[PCS_KEY]):
        with contextlib.suppress(Exception):
            await pc.close()


def create_app() -> web.Application:
    app = web.Application()
    app[PCS_KEY] = set()
    app.router.add_post("/api/offer", offer)
    app.router.add_get("/health", health)
    app.on_shutdown.append(_close_all)
    return app


async def _serve(port: int) -> None:
    runner = web.AppRunner(create_app(), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"echo: listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    configure_host_addresses(("127.0.0.1",))
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
