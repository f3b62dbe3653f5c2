"""A bare aiortc echo server: the baseline our voice server is compared with.

It answers offers exactly like the voice server (same route, same ICE
settings) and sends each peer's audio straight back, so a benchmark can
measure what plain aiortc costs (transport delay, CPU per session, late
frames) in the same run as our server. Its audio receivers use the same
jitter buffer as the voice server's (``media_server.rtc.jitter``; pass
``--receive-buffer aiortc`` for aiortc's own), so the transport it measures is
the transport both share.

    uv run python -m bench.echo_server --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import av
import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from media_server.metrics import CONTENT_TYPE, Metrics
from media_server.rtc import jitter
from media_server.rtc.ice import configure_host_addresses, rtc_configuration
from signaling.app import METRICS_KEY, _watch_loop_lag

PCS_KEY = web.AppKey("pcs", set)
FRAMES_KEY = web.AppKey("frames", str)
BUFFER_KEY = web.AppKey("receive_buffer", str)
LAG_TASK_KEY = web.AppKey("lag_task", list)


class MonoRelay(MediaStreamTrack):
    """Sends the first channel of each received frame as an exact-size mono frame.

    aiortc's Opus decoder hands out frames whose plane buffer is sized for
    120 ms of stereo (23,040 bytes for 20 ms of audio), and aiortc's sender
    runs its pure-Python ``compute_audio_level_dbov`` over the whole buffer:
    ~2.5 ms per frame on the event loop. Echoing decoded frames as they are
    makes a baseline that is mostly that. Relayed as 960-sample mono frames,
    the outbound side costs what the voice server's own track costs.
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self._source = source

    async def recv(self) -> av.AudioFrame:
        frame = await self._source.recv()
        channels = len(frame.layout.channels)
        samples = np.frombuffer(frame.planes[0], dtype="<i2", count=frame.samples * channels)
        out = av.AudioFrame(format="s16", layout="mono", samples=frame.samples)
        out.planes[0].update(samples[::channels].tobytes())
        out.sample_rate = frame.sample_rate
        out.time_base = frame.time_base
        out.pts = frame.pts
        return out


async def offer(request: web.Request) -> web.Response:
    body = await request.json()
    pc = RTCPeerConnection(configuration=rtc_configuration())
    request.app[PCS_KEY].add(pc)

    @pc.on("track")
    def on_track(track) -> None:
        if request.app[FRAMES_KEY] == "mono" and track.kind == "audio":
            pc.addTrack(MonoRelay(track))
        else:
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
    if request.app[BUFFER_KEY] == "immediate":
        jitter.install_on(pc)
    await pc.setLocalDescription(await pc.createAnswer())
    return web.json_response(
        {"sdp": pc.localDescription.sdp, "type": "answer", "session_id": "echo"}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy", "sessions": len(request.app[PCS_KEY])})


async def metrics(request: web.Request) -> web.Response:
    m: Metrics = request.app[METRICS_KEY]
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


async def _start_lag_watch(app: web.Application) -> None:
    # The voice server's own sampler and metric, so both are read alike.
    app[LAG_TASK_KEY].append(asyncio.create_task(_watch_loop_lag(app)))


async def _stop_lag_watch(app: web.Application) -> None:
    for task in app[LAG_TASK_KEY]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_all(app: web.Application) -> None:
    for pc in list(app[PCS_KEY]):
        with contextlib.suppress(Exception):
            await pc.close()


def create_app(frames: str = "raw", receive_buffer: str = "immediate") -> web.Application:
    """``frames``: "raw" sends the decoded frames back as they come (the barest
    echo); "mono" relays them as exact-size mono frames (see MonoRelay)."""
    app = web.Application()
    app[PCS_KEY] = set()
    app[FRAMES_KEY] = frames
    app[BUFFER_KEY] = receive_buffer
    app[METRICS_KEY] = Metrics()
    app[LAG_TASK_KEY] = []
    app.router.add_post("/api/offer", offer)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(_start_lag_watch)
    app.on_shutdown.append(_close_all)
    app.on_cleanup.append(_stop_lag_watch)
    return app


async def _serve(port: int, frames: str, receive_buffer: str) -> None:
    runner = web.AppRunner(create_app(frames, receive_buffer), handle_signals=False)
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
    parser.add_argument(
        "--frames", choices=("raw", "mono"), default="raw", help="what to send back"
    )
    parser.add_argument(
        "--receive-buffer",
        choices=("immediate", "aiortc"),
        default="immediate",
        help="inbound jitter buffer: the voice server's (default) or aiortc's (80 ms prefetch)",
    )
    args = parser.parse_args()
    configure_host_addresses(("127.0.0.1",))
    asyncio.run(_serve(args.port, args.frames, args.receive_buffer))


if __name__ == "__main__":
    main()
