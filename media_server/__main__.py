"""CLI: parse flags -> Settings -> run the app. Nothing else."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from media_server.agents import Agent, AgentConfigError, load_agents
from media_server.config import ConfigError, Settings, load_settings
from media_server.log_format import configure_logging
from media_server.store import StoreError
from media_server.workers import SessionCount

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
    parser.add_argument("--log-format", help="text (default) or json: one JSON object a line")
    parser.add_argument("--stt-provider", help="auto, openai, whisper or pocketsphinx")
    parser.add_argument("--llm-provider", help="auto, openai or scripted")
    parser.add_argument(
        "--tts-provider", help="auto, or a comma list of elevenlabs, openai, piper, espeak"
    )
    parser.add_argument(
        "--ice-host-addresses", help="comma list of IPs to offer as ICE host candidates"
    )
    parser.add_argument("--max-sessions", help="concurrent sessions allowed (default 20)")
    parser.add_argument(
        "--workers", help="processes serving the port, each owning its sessions (default 1)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    token = commands.add_parser(
        "token",
        help="print a single-use access token (needs AUTH_SECRET)",
        description="Mint a signed, short-lived, single-use token for POST /api/offer. "
        "Give it to a person as http://HOST:PORT/?token=TOKEN.",
    )
    token.add_argument("--ttl", help="seconds the token stays valid (default: TOKEN_TTL_S)")
    token.add_argument("--url", help="print BASE_URL/?token=TOKEN instead of the bare token")
    return parser


def _mint(settings: Settings, ttl: str | None, url: str | None) -> int:
    from signaling.tokens import mint_token

    if not settings.auth_required:
        print("voice-agent token: AUTH_SECRET is not set (see README, Security)", file=sys.stderr)
        return 2
    ttl_s = settings.token_ttl_s
    if ttl is not None:
        try:
            ttl_s = float(ttl)
        except ValueError:
            ttl_s = float("nan")
        if not 1 <= ttl_s <= 86400:  # also false for nan
            print(f"voice-agent token: --ttl={ttl!r}: must be 1 to 86400 seconds", file=sys.stderr)
            return 2
        if ttl_s > settings.token_ttl_s:
            # The server refuses tokens that outlive its own TTL (plus skew).
            print(
                f"voice-agent token: --ttl={ttl_s:g} is longer than TOKEN_TTL_S="
                f"{settings.token_ttl_s:g}; the server would refuse it",
                file=sys.stderr,
            )
            return 2
    token = mint_token(settings.auth_secret, ttl_s)
    print(f"{url.rstrip('/')}/?token={token}" if url else token)
    return 0


def _announce(settings: Settings, event: str, message: str, **fields: str) -> None:
    """A start/stop line: printed for people; with LOG_FORMAT=json a log
    line like every other, so a platform reads nothing that is not JSON."""
    if settings.log_format == "json":
        extra = {"event": event, "fields": fields}
        logging.getLogger("voice_agent").info("voice-agent: %s", message, extra=extra)
    else:
        print(f"voice-agent: {message}", flush=True)


async def _serve(
    settings: Settings,
    agents: dict[str, Agent],
    session_count: SessionCount | None = None,
    worker: int | None = None,
    shared_db: Path | None = None,
) -> None:
    """Runs until SIGINT/SIGTERM, then ends every session and exits."""
    from aiohttp import web

    from media_server.providers import resolve_names
    from signaling.app import create_app
    from signaling.drain import drain

    app = create_app(settings, agents=agents, session_count=session_count, shared_db=shared_db)
    from signaling.access_log import RedactingAccessLogger

    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log_class=RedactingAccessLogger,
    )
    stop = asyncio.Event()  # stop taking calls
    at_once = asyncio.Event()  # and end the live ones now

    def on_sigterm() -> None:
        if stop.is_set():
            at_once.set()  # a second SIGTERM: no more waiting
        stop.set()

    def on_sigint() -> None:
        stop.set()
        at_once.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    await runner.setup()  # loads the engines (pocketsphinx takes about a second)
    try:
        await web.TCPSite(
            runner, settings.host, settings.port, reuse_port=worker is not None
        ).start()
        stt, llm, tts = (",".join(chain) for chain in resolve_names(settings))
        url_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        if not worker:  # one line per server, not per worker
            workers = f"; {settings.workers} workers" if worker is not None else ""
            _announce(
                settings,
                "listening",
                f"listening on http://{url_host}:{settings.port} "
                f"(stt={stt}, llm={llm}, tts={tts}; agents: {', '.join(agents)}{workers})",
                url=f"http://{url_host}:{settings.port}",
                stt=stt,
                llm=llm,
                tts=tts,
            )
        await stop.wait()
        if not at_once.is_set() and settings.drain_timeout_s > 0:
            if not worker:
                print(
                    f"voice-agent: draining (up to {settings.drain_timeout_s:g}s; "
                    "send SIGTERM again to end every call now)",
                    flush=True,
                )
            await drain(app, settings.drain_timeout_s, at_once)
        if not worker:
            _announce(settings, "shutting_down", "shutting down")
    finally:
        await runner.cleanup()  # ends what is left with session_end: shutdown


def _serve_workers(settings: Settings, agents: dict[str, Agent]) -> int:
    from media_server.workers import run_workers

    # Fail here, once, if the port is taken, rather than in every worker.
    with socket.create_server((settings.host, settings.port), reuse_port=True):
        pass
    count = SessionCount.across_processes(settings.workers)
    # Tokens and rate limits the workers share when there is no Redis.
    shared_dir = Path(tempfile.mkdtemp(prefix="voice-agent-shared-"))

    def serve(index: int) -> None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                _serve(
                    settings,
                    agents,
                    session_count=count.for_worker(index),
                    worker=index,
                    shared_db=shared_dir / "shared.db",
                )
            )

    try:
        return run_workers(
            settings.workers, serve, drain_timeout_s=settings.drain_timeout_s, sessions=count
        )
    finally:
        shutil.rmtree(shared_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command
    extra = {"command", "ttl", "url"}
    overrides = {k: v for k, v in vars(args).items() if v is not None and k not in extra}
    try:
        settings = load_settings(overrides)
        agents = load_agents(settings.agents_file)
    except (ConfigError, AgentConfigError) as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return 2
    if command == "token":
        return _mint(settings, args.ttl, args.url)

    configure_logging(settings.log_level, settings.log_format, settings.secrets)

    try:
        if settings.workers > 1:
            return _serve_workers(settings, agents)
        asyncio.run(_serve(settings, agents))
    except StoreError as exc:  # DATABASE_URL names a file we cannot open or use
        print(f"voice-agent: DATABASE_URL: {exc}", file=sys.stderr)
        return 1
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
