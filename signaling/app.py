"""The HTTP edge: page, agent list, SDP offer/answer, health and metrics.

No audio here: this module turns HTTP into ``VoiceSession.accept`` calls and
every failure into a JSON error. Bad input is a 4xx, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from media_server.agents import Agent, load_agents
from media_server.audio import level as audio_level
from media_server.config import Settings
from media_server.metrics import CONTENT_TYPE, Metrics
from media_server.providers import build_providers
from media_server.providers.base import Providers
from media_server.session import SessionError, VoiceSession
from media_server.workers import SessionCount
from signaling.limits import RateLimiter, origin_allowed, retry_after_header
from signaling.registry import CapacityError, SessionRegistry, ShuttingDown
from signaling.sdp import SdpError, check_offer_sdp
from signaling.tokens import CheckedToken, TokenError, TokenVerifier

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LOOP_LAG_INTERVAL_S = 0.25

SETTINGS_KEY = web.AppKey("settings", Settings)
AGENTS_KEY = web.AppKey("agents", dict)
PROVIDERS_KEY = web.AppKey("providers", Providers)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
METRICS_KEY = web.AppKey("metrics", Metrics)
BACKGROUND_KEY = web.AppKey("background", list)
OWNS_PROVIDERS_KEY = web.AppKey("owns_providers", bool)
RATE_LIMITER_KEY = web.AppKey("rate_limiter", RateLimiter)
TOKENS_KEY = web.AppKey("tokens", TokenVerifier | None)  # type: ignore[arg-type]

# Sent with every answer. The page may be opened as /?token=...: no-referrer
# keeps that URL out of the Referer of everything the page fetches next.
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def json_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers or None
    )


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
    return web.json_response({"status": "healthy", "sessions": len(request.app[REGISTRY_KEY])})


async def metrics(request: web.Request) -> web.Response:
    m: Metrics = request.app[METRICS_KEY]
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


def _reject(status: int, code: str, message: str, **headers: str) -> _Reject:
    response = json_error(status, code, message, **headers)
    # The body was not read (or not all of it): close the connection after
    # the answer instead of keeping it alive behind unread bytes. aiohttp
    # still drains a little (lingering close) so the client sees the answer.
    response.force_close()
    return _Reject(response)


def _too_large() -> _Reject:
    reject = _reject(413, "body_too_large", f"Body is larger than {MAX_BODY_BYTES} bytes.")
    reject.abort = True
    return reject


def _admit(request: web.Request) -> None:
    """Checks that need no body: shutdown, per-IP rate, Origin (DESIGN.md §8)."""
    app = request.app
    if app[REGISTRY_KEY].closing:
        raise _reject(503, "shutting_down", "The server is shutting down.", **{"Retry-After": "5"})
    wait_s = app[RATE_LIMITER_KEY].acquire(request.remote or "unknown")
    if wait_s > 0:
        raise _reject(
            429,
            "rate_limited",
            "Too many connection attempts from your address; please wait a moment.",
            **{"Retry-After": retry_after_header(wait_s)},
        )
    settings = app[SETTINGS_KEY]
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request.headers.get("Host"), settings.allowed_origins):
        log.info("offer refused: Origin %.100r is not allowed", origin)
        raise _reject(403, "forbidden_origin", "Pages from this origin may not connect.")


async def _read_offer(request: web.Request) -> dict[str, Any]:
    """The offer body as a dict, or an HTTP error response raised as such."""
    if request.content_type != "application/json":
        raise _reject(415, "unsupported_media_type", "Send the offer as application/json.")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        # Refused on the header alone: not a byte of the body is read.
        raise _too_large()
    try:
        raw = (
            await request.content.readexactly(request.content_length)
            if request.content_length is not None
            else await _read_capped(request)
        )
    except (asyncio.IncompleteReadError, ConnectionError):
        raise _reject(400, "bad_request", "The body ended early.") from None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Reject(json_error(400, "bad_json", "The body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise _Reject(json_error(400, "bad_request", "The body must be a JSON object."))
    return body


async def _read_capped(request: web.Request) -> bytes:
    """A chunked body, refused once it passes the cap."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response
        # Close the connection as soon as the answer is out, without reading
        # on: aiohttp would otherwise read and discard the rest of the body
        # for up to 10 s ("lingering close"), even after the client is gone.
        self.abort = False


def _token_error(exc: TokenError) -> web.Response:
    # The message names the problem, never the token.
    return json_error(401, exc.code, str(exc), **{"WWW-Authenticate": 'Token realm="voice-agent"'})


async def offer(request: web.Request) -> web.Response:
    app = request.app
    m: Metrics = app[METRICS_KEY]
    try:
        response = await _answer_offer(request)
    except _Reject as reject:
        response = reject.response
        if reject.abort:
            m.offers_rejected.labels(status=str(response.status)).inc()
            await response.prepare(request)
            await response.write_eof()
            if request.protocol is not None:
                request.protocol.force_close()  # the transport flushes the answer, then closes
            return response
    if response.status >= 400:
        m.offers_rejected.labels(status=str(response.status)).inc()
    return response


async def _answer_offer(request: web.Request) -> web.Response:
    app = request.app
    _admit(request)
    body = await _read_offer(request)
    verifier: TokenVerifier | None = app[TOKENS_KEY]
    token: CheckedToken | None = None
    if verifier is not None:
        try:
            token = verifier.check(body.get("token"))
        except TokenError as exc:
            return _token_error(exc)
    if body.get("type") != "offer":
        return json_error(400, "bad_request", "'type' must be \"offer\".")
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        return json_error(400, "bad_request", "'agent_id' must name an agent (see /api/agents).")
    agent = app[AGENTS_KEY].get(agent_id)
    if agent is None:
        return json_error(404, "unknown_agent", f"No agent called {agent_id[:60]!r}.")
    try:
        sdp = check_offer_sdp(body.get("sdp"))
    except SdpError as exc:
        return json_error(400, "bad_sdp", str(exc))
    registry: SessionRegistry = app[REGISTRY_KEY]
    try:
        session_id = registry.reserve()
    except ShuttingDown:
        return json_error(
            503, "shutting_down", "The server is shutting down.", **{"Retry-After": "5"}
        )
    except CapacityError:
        return json_error(
            503,
            "at_capacity",
            "The server is busy; please try again shortly.",
            **{"Retry-After": "5"},
        )
    if verifier is not None and token is not None:
        # Spent only now, with a slot in hand: a 503 or a bad offer leaves the
        # token usable. No await since check(), so two requests cannot both
        # pass with the same token.
        try:
            verifier.spend(token)
        except TokenError as exc:
            registry.release_reservation()
            return _token_error(exc)
    m: Metrics = app[METRICS_KEY]
    try:
        session = VoiceSession(
            session_id=session_id,
            agent=agent,
            settings=app[SETTINGS_KEY],
            providers=app[PROVIDERS_KEY],
            metrics=m,
            on_closed=functools.partial(_session_closed, registry, m),
        )
    except BaseException:
        registry.release_reservation()
        raise
    registry.add(session)
    # Each worker counts its own sessions; /metrics sums them ("livesum").
    m.sessions_active.inc()
    try:
        answer_sdp = await session.accept(sdp)
    except SessionError as exc:
        await session.close("bad_offer")
        return json_error(400, "bad_sdp", f"The offer could not be used ({exc}).")
    except BaseException:
        await session.close("error")
        raise
    m.sessions_total.inc()
    return web.json_response({"sdp": answer_sdp, "type": "answer", "session_id": session_id})


def _session_closed(registry: SessionRegistry, m: Metrics, session: VoiceSession) -> None:
    registry.remove(session)
    m.sessions_active.dec()


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
    app[BACKGROUND_KEY].append(asyncio.create_task(_watch_loop_lag(app)))


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
    """CORS preflight for a page on an ALLOWED_ORIGINS origin (a JSON POST
    from another origin needs one); everyone else is refused."""
    if _cors_origin(request) is None:
        return json_error(403, "forbidden_origin", "Pages from this origin may not connect.")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
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


def create_app(
    settings: Settings,
    *,
    providers: Providers | None = None,
    agents: dict[str, Agent] | None = None,
    session_count: SessionCount | None = None,
) -> web.Application:
    """The aiohttp app. Pass ``providers`` to share engines (tests do); the
    app then leaves closing them to the caller. ``session_count`` is shared
    by the workers of one server (``--workers``)."""
    # aiortc's per-frame audio level in pure Python is our largest loop cost.
    audio_level.install()
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS_KEY] = settings
    app[AGENTS_KEY] = agents if agents is not None else load_agents(settings.agents_file)
    app[REGISTRY_KEY] = SessionRegistry(settings.max_sessions, session_count)
    app[METRICS_KEY] = Metrics()
    app[BACKGROUND_KEY] = []
    app[OWNS_PROVIDERS_KEY] = providers is None
    app[RATE_LIMITER_KEY] = RateLimiter(settings.rate_limit_per_minute)
    app[TOKENS_KEY] = (
        TokenVerifier(settings.auth_secret, settings.token_ttl_s)
        if settings.auth_required
        else None
    )
    if providers is not None:
        app[PROVIDERS_KEY] = providers
    app.router.add_get("/", index)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_post("/api/offer", offer)
    app.router.add_route("OPTIONS", "/api/offer", offer_preflight)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.on_response_prepare.append(_add_security_headers)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
