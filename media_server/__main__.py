"""CLI: parse flags -> Settings -> run the app. Nothing else."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from media_server.agents import Agent, AgentConfigError, load_agents
from media_server.config import ConfigError, Settings, load_settings

SHUTDOWN_TIMEOUT_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-agent",
        description="Real-time voice agent server: talk to an AI agent from your browser.",
        epilog="Every setting can also come from the environment or a .env file "
        "(see README.md), e.g. STT_PROVIDER=pocketsphinx.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", help="port to listen on (default 8080)")
    parser.add_argument("--agents-file", help="TOML file with extra agent personas")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--stt-provider", help="auto, openai or pocketsphinx")
    parser.add_argument("--llm-provider", help="auto, openai or scripted")
    parser.add_argument("--tts-provider", help="auto, elevenlabs, openai or espeak")
    parser.add_argument(
        "--ice-host-addresses", help="comma list of IPs to offer as ICE host candidates"
    )
    parser.add_argument("--max-sessions", help="concurrent sessions allowed (default 20)")
    return parser


async def _serve(settings: Settings, agents: dict[str, Agent]) -> None:
    """Runs until SIGINT/SIGTERM, then ends every session and exits."""
    from aiohttp import web

    from media_server.providers import resolve_names
    from signaling.app import create_app

    app = create_app(settings, agents=agents)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()  # loads the engines (pocketsphinx takes about a second)
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        stt, llm, tts = resolve_names(settings)
        url_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(
            f"voice-agent: listening on http://{url_host}:{settings.port} "
            f"(stt={stt}, llm={llm}, tts={tts}; agents: {', '.join(agents)})",
            flush=True,
        )
        await stop.wait()
        print("voice-agent: shutting down", flush=True)
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = load_settings(overrides)
        agents = load_agents(settings.agents_file)
    except (ConfigError, AgentConfigError) as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aioice logs every connectivity check at INFO.
    logging.getLogger("aioice").setLevel(logging.WARNING)

    from media_server.ice import configure_host_addresses

    configure_host_addresses(settings.ice_host_addresses)
    try:
        asyncio.run(_serve(settings, agents))
    except OSError as exc:
        print(
            f"voice-agent: cannot listen on {settings.host}:{settings.port} ({exc})",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
