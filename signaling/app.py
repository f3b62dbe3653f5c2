"""The HTTP edge: page, agent list, SDP offer/answer, health and metrics.

No audio here: the routes, middleware and start-up; the offer itself is
answered in offer.py. Every failure becomes a JSON error; bad input is a
4xx, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from media_server import rtc
from media_server.agents import Agent, load_agents
from media_server.config import Settings
from media_server.echo.canceller import warm_canceller
from media_server.ice_servers import IceServers
from media_server.listening.vad import SileroPool
from media_server.metrics import CONTENT_TYPE, Metrics
from media_server.providers import build_providers
from media_server.providers.base import Providers
from media_server.workers import SessionCount
from signaling import acting
from signaling.client_address import TrustedProxies
from signaling.ice_servers import ice_servers
from signaling.limits import RateLimiter, origin_allowed
from signaling.offer import offer
from signaling.registry import SessionRegistry
from signaling.shared import SharedState, SharedStateUnavailable
from signaling.state import (
    AGENTS_KEY,
    BACKGROUND_KEY,
    ICE_SERVERS_KEY,
    LOOP_LAG_INTERVAL_S,
    MAX_BODY_BYTES,
    METRICS_KEY,
    OWNS_PROVIDERS_KEY,
    PROVIDERS_KEY,
    RATE_LIMITER_KEY,
    REGISTRY_KEY,
    SECURITY_HEADERS,
    SETTINGS_KEY,
    SHARED_KEY,
    STATIC_DIR,
    TOKENS_KEY,
    VAD_POOL_KEY,
    json_error,
)
from signaling.telephony import PHONE_TOKENS_KEY, pcm_stream, twilio_stream
from signaling.tokens import TokenVerifier
from signaling.twilio_webhook import PHONE_SECRET_KEY, twilio_voice

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """JSON for every error on /api; never a traceback to the client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status, "http_error"
        )
        return json_error(exc.status, code, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "Internal server error.")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def list_agents(request: web.Request) -> web.Response:
    agents: dict[str, Agent] = request.app[AGENTS_KEY]
    return web.json_response([a.public() for a in agents.values()])


async def health(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    if registry.closing:  # a load balancer stops sending calls here
        return web.json_response({"status": "draining", "sessions": len(registry)}, status=503)
    body: dict[str, object] = {"status": "healthy", "sessions": len(registry)}
    if settings_have_redis(request.app[SETTINGS_KEY]):
        # Calls on every host (the shared registry), or why they can't be counted.
        try:
            body["calls_everywhere"] = len(await request.app[SHARED_KEY].live_calls())
        except SharedStateUnavailable:
            body["shared_state"] = "unavailable"  # live calls go on; new ones get 503
    return web.json_response(body)


def settings_have_redis(settings: Settings) -> bool:
    return bool(settings.redis_url)


async def metrics(request: web.Request) -> web.Response:
    refused = metrics_refusal(request.app[SETTINGS_KEY], request)
    if refused is not None:
        return refused
    m: Metrics = request.app[METRICS_KEY]
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


def metrics_refusal(settings: Settings, request: web.Request) -> web.Response | None:
    """Who may read /metrics: with METRICS_TOKEN, its bearer; else, on a server
    that needs tokens for calls (AUTH_SECRET), only this machine; else anyone."""
    if settings.metrics_token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(presented.encode(), settings.metrics_token.encode()):
            return None
        return json_error(
            401,
            "unauthorized",
            "Metrics need the METRICS_TOKEN as a Bearer token.",
            **{"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if settings.auth_required and not _is_loopback(request.remote):
        return json_error(
            403, "forbidden", "Metrics are served to this machine only; set METRICS_TOKEN."
        )
    return None


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


async def _watch_loop_lag(app: web.Application) -> None:
    """Samples how late the loop wakes us: the health of every 20 ms path."""
    m: Metrics = app[METRICS_KEY]
    while True:
        start = time.monotonic()
        await asyncio.sleep(LOOP_LAG_INTERVAL_S)
        m.loop_lag.observe(max(0.0, (time.monotonic() - start - LOOP_LAG_INTERVAL_S) * 1000))


async def _on_startup(app: web.Application) -> None:
    if PROVIDERS_KEY not in app:
        app[PROVIDERS_KEY] = build_providers(app[SETTINGS_KEY])
    providers = app[PROVIDERS_KEY]
    for engine in (providers.stt, providers.llm, providers.tts):
        await engine.warm_up()  # part of every engine protocol; a no-op where nothing loads
    if app[SETTINGS_KEY].vad_provider == "silero":
        # Each model takes ~100 ms to load: two are ready before the first call.
        await asyncio.to_thread(app[VAD_POOL_KEY].warm, 2)
    if app[SETTINGS_KEY].echo_guard == "aec":
        await asyncio.to_thread(warm_canceller)  # its native library loads in ~1 s, once
    app[BACKGROUND_KEY].append(asyncio.create_task(_watch_loop_lag(app)))
    shared = app[SHARED_KEY]
    if settings_have_redis(app[SETTINGS_KEY]):
        from signaling.shared.call_list import keep_calls_listed

        registry = app[REGISTRY_KEY]
        task = keep_calls_listed(shared, registry.local_sessions, app[SETTINGS_KEY].port)
        app[BACKGROUND_KEY].append(asyncio.create_task(task, name="call-list"))


async def _on_shutdown(app: web.Application) -> None:
    await app[REGISTRY_KEY].close_all("shutdown")


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
        origin = _cors_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"


def _cors_origin(request: web.Request) -> str | None:
    """The Origin to let read our answer: one ALLOWED_ORIGINS names that is
    not our own (same-origin pages need no CORS)."""
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS_KEY].allowed_origins
    if origin is None or not allowed:
        return None
    if origin_allowed(origin, request.headers.get("Host"), ()):
        return None  # same origin
    return origin if origin_allowed(origin, None, allowed) else None


async def offer_preflight(request: web.Request) -> web.Response:
    """CORS preflight for a page on an ALLOWED_ORIGINS origin (a JSON POST,
    or a GET of /api/ice-servers with a Bearer token, from another origin
    needs one); everyone else is refused."""
    if _cors_origin(request) is None:
        return json_error(403, "forbidden_origin", "Pages from this origin may not connect.")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST",
            # Authorization: /api/ice-servers takes the token as a Bearer.
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": "600",
        },
    )


async def _on_cleanup(app: web.Application) -> None:
    for task in app[BACKGROUND_KEY]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if app[OWNS_PROVIDERS_KEY]:
        await app[PROVIDERS_KEY].close()
    if app[SHARED_KEY] is not None:
        await app[SHARED_KEY].close()


def _shared_state(settings: Settings, shared_db: Path | None) -> SharedState | None:
    """Redis when configured (every worker and host); else the workers' file
    (``--workers``); else nothing to share."""
    if settings.redis_url:
        from signaling.shared.redis_state import RedisState

        return RedisState(settings.redis_url)
    if shared_db is not None:
        from signaling.shared.sqlite_state import SqliteState

        return SqliteState(shared_db)
    return None


def create_app(
    settings: Settings,
    *,
    providers: Providers | None = None,
    agents: dict[str, Agent] | None = None,
    session_count: SessionCount | None = None,
    shared_db: Path | None = None,
) -> web.Application:
    """The aiohttp app. Pass ``providers`` to share engines (tests do); the
    app then leaves closing them to the caller. ``session_count`` is shared
    by the workers of one server (``--workers``)."""
    rtc.install(settings.ice_host_addresses)
    middlewares: list[Any] = [error_middleware]
    if settings.trusted_proxies:
        # Inside error_middleware: a malformed X-Forwarded-For is a JSON 400.
        middlewares.append(TrustedProxies(settings.trusted_proxies).middleware)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[SETTINGS_KEY] = settings
    app[AGENTS_KEY] = agents if agents is not None else load_agents(settings.agents_file)
    app[REGISTRY_KEY] = SessionRegistry(settings.max_sessions, session_count)
    app[METRICS_KEY] = Metrics()
    app[BACKGROUND_KEY] = []
    app[OWNS_PROVIDERS_KEY] = providers is None
    app[RATE_LIMITER_KEY] = RateLimiter(settings.rate_limit_per_minute)
    app[VAD_POOL_KEY] = SileroPool()
    app[SHARED_KEY] = _shared_state(settings, shared_db)
    app[TOKENS_KEY] = (
        TokenVerifier(settings.auth_secret, settings.token_ttl_s)
        if settings.auth_required
        else None
    )
    app[ICE_SERVERS_KEY] = IceServers(settings)
    # Stream tokens minted by the Twilio webhook: every worker must check
    # them with the same secret, so a configured one (a random one is right
    # for a single process only).
    phone_secret = settings.auth_secret or settings.twilio_auth_token or secrets.token_hex(32)
    app[PHONE_SECRET_KEY] = phone_secret
    app[PHONE_TOKENS_KEY] = TokenVerifier(phone_secret, settings.token_ttl_s)
    if providers is not None:
        app[PROVIDERS_KEY] = providers
    app.router.add_get("/", index)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_get("/api/ice-servers", ice_servers)
    app.router.add_route("OPTIONS", "/api/ice-servers", offer_preflight)
    app.router.add_post("/api/offer", offer)
    app.router.add_route("OPTIONS", "/api/offer", offer_preflight)
    app.router.add_post("/telephony/twilio/voice", twilio_voice)
    app.router.add_get("/telephony/twilio/stream", twilio_stream)
    app.router.add_get("/telephony/pcm", pcm_stream)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.on_response_prepare.append(_add_security_headers)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    acting.install(app)  # the agents' tools and database, /api/sessions/{id}
    return app
