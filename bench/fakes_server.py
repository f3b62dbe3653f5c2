"""The OpenAI and ElevenLabs fakes in a process of their own.

A benchmark that ran them in its own process charged their CPU (multipart
parsing, SSE framing, MP3 chunking) to the server under test, since they
shared a loop and a core with the aiortc client. Prints one JSON line with
the base URLs, then serves until SIGTERM.

    uv run python -m bench.fakes_server --stt-delay 0.15 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

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
    )
    eleven = await start_elevenlabs_fake(
        first_byte_delay_s=args.tts_delay, audio=mp3_bytes(args.tts_seconds)
    )
    print(json.dumps({"openai": openai.base_url, "elevenlabs": eleven.base_url}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await openai.close()
    await eleven.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transcript", default="I would like to book an appointment")
    parser.add_argument("--first-byte-delay", type=float, default=0.15)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--tts-delay", type=float, default=0.10)
    parser.add_argument("--tts-seconds", type=float, default=1.0)
    parser.add_argument("--replies", default="{}", help='JSON {"prompt marker": "reply"}')
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
