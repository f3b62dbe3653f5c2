"""The OpenAI and ElevenLabs fakes in a process of their own.

A benchmark that ran them in its own process charged their CPU (multipart
parsing, SSE framing, MP3 chunking) to the server under test, since they
shared a loop and a core with the aiortc client. Prints one JSON line with
the base URLs, then serves until SIGTERM. ``GET <log>/requests`` lists every
request each fake took: path, arrival and first byte (``time.monotonic()``,
one clock for every process on the machine), so a bench can place them on
its own timeline.

    uv run python -m bench.fakes_server --stt-delay 0.15 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web

from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.mp3_fixture import mp3_bytes
from tests.fakes.openai_fake import start_openai_fake


def reply_by_prompt(replies: dict[str, str]):
    """The reply whose key appears in the system prompt (one fake, many agents)."""

    def reply(request: dict) -> str:
        system = next(
            (m.get("content", "") for m in request["messages"] if m.get("role") == "system"), ""
        )
        return next((text for key, text in replies.items() if key in system), "Okay.")

    return reply


async def serve(args: argparse.Namespace) -> None:
    replies = json.loads(args.replies)
    openai = await start_openai_fake(
        transcript=args.transcript,
        first_byte_delay_s=args.first_byte_delay,
        chunk_delay_s=args.token_delay,
        reply=reply_by_prompt(replies),
        # OpenAI's speech (Pipecat's TTS in bench.vs_pipecat) at the TTS latency.
        path_delays={
            "/audio/speech": args.tts_delay,
            "/chat/completions": args.llm_delay or args.first_byte_delay,
        },
        chunk_size=args.tts_chunk_size,
    )
    # Realtime transcription (STT_PROVIDER=openai-realtime): each commit's
    # transcript after the same STT latency as a batch request.
    openai.realtime.knobs.delay_s = args.first_byte_delay
    openai.realtime.knobs.transcripts = [args.transcript]
    eleven = await start_elevenlabs_fake(
        first_byte_delay_s=args.tts_delay,
        audio=mp3_bytes(args.tts_seconds),
        chunk_size=args.tts_chunk_size,
        chunk_delay_s=args.tts_chunk_delay,
    )

    async def requests(_: web.Request) -> web.Response:
        taken = [
            {"fake": name, "path": r.path, "at": r.started_at, "first_byte_at": r.first_byte_at}
            for name, fake in (("openai", openai), ("elevenlabs", eleven))
            for r in fake.requests
        ]
        return web.json_response(taken)

    app = web.Application()
    app.router.add_get("/requests", requests)
    log = web.AppRunner(app, access_log=None)
    await log.setup()
    site = web.TCPSite(log, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    urls = {"openai": openai.base_url, "elevenlabs": eleven.base_url}
    print(json.dumps({**urls, "log": f"http://127.0.0.1:{port}"}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await log.cleanup()
    await openai.close()
    await eleven.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transcript", default="I would like to book an appointment")
    parser.add_argument("--first-byte-delay", type=float, default=0.15)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--tts-delay", type=float, default=0.10)
    parser.add_argument("--llm-delay", type=float, default=0.0, help="0: --first-byte-delay")
    parser.add_argument("--tts-chunk-size", type=int, default=2048)
    parser.add_argument("--tts-chunk-delay", type=float, default=0.0)
    parser.add_argument("--tts-seconds", type=float, default=1.0)
    parser.add_argument("--replies", default="{}", help='JSON {"prompt marker": "reply"}')
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
