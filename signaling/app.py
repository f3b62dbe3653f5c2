"""The HTTP edge: page, agent list, SDP offer/answer, health and metrics.

No audio here: this module turns HTTP into ``VoiceSession.accept`` calls and
every failure into a JSON error. Bad input is a 4xx, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from media_server.agents import Agent, load_agents
from media_server.config import Settings
from media_server.metrics import CONTENT_TYPE, Metrics
from media_server.providers import build_providers
from media_server.providers.base import Providers
from media_server.session import SessionError, VoiceSession
from signaling.registry import CapacityError, SessionRegistry
from signaling.sdp import SdpError, check_offer_sdp

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LOOP_LAG_INTERVAL_S = 0.5

SETTINGS_KEY = web.AppKey("settings", Settings)
AGENTS_KEY = web.AppKey("agents", dict)
PROVIDERS_KEY = web.AppKey("providers", Providers)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
METRICS_KEY = web.AppKey("metrics", Metrics)
BACKGROUND_KEY = web.AppKey("background", list)
OWNS_PROVIDERS_KEY = web.AppKey("owns_providers", bool)


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
    m.sessions_active.set(len(request.app[REGISTRY_KEY]))
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


async def _read_offer(request: web.Request) -> dict[str, Any]:
    """The offer body as a dict, or an HTTP error response raised as such."""
    if request.content_type != "application/json":
        raise _Reject(
            json_error(415, "unsupported_media_type", "Send the offer as application/json.")
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _Reject(
            json_error(413, "body_too_large", f"Body is larger than {MAX_BODY_BYTES} bytes.")
        )
    try:
        raw = (
            await request.content.readexactly(request.content_length)
            if request.content_length is not None
            else await _read_capped(request)
        )
    except (asyncio.IncompleteReadError, ConnectionError):
        raise _Reject(json_error(400, "bad_request", "The body ended early.")) from None
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
            raise _Reject(
                json_error(413, "body_too_large", f"Body is larger than {MAX_BODY_BYTES} bytes.")
            )
        chunks.append(chunk)
    return b"".join(chunks)


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def offer(request: web.Request) -> web.Response:
    app = request.app
    m: Metrics = app[METRICS_KEY]
    try:
        response = await _answer_offer(request)
    except _Reject as reject:
        response = reject.response
    if response.status >= 400:
        m.offers_rejected.labels(status=str(response.status)).inc()
    return response


async def _answer_offer(request: web.Request) -> web.Response:
    app = request.app
    body = await _read_offer(request)
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
    except CapacityError:
        return json_error(
            503,
            "at_capacity",
            "The server is busy; please try again shortly.",
            **{"Retry-After": "5"},
        )
    m: Metrics = app[METRICS_KEY]
    try:
        session = VoiceSession(
            session_id=session_id,
            agent=agent,
            settings=app[SETTINGS_KEY],
            providers=app[PROVIDERS_KEY],
            metrics=m,
            on_closed=registry.remove,
        )
    except BaseException:
        registry.release_reservation()
        raise
    registry.add(session)
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


async def _watch_loop_lag(app: web.Application) -> None:
    """Samples how late the loop wakes us: the health of every 20 ms path."""
    m: Metrics = app[METRICS_KEY]
    while True:
        start = time.monotonic()
        await asyncio.sleep(LOOP_LAG_INTERVAL_S)
        m.loop_lag.set(max(0.0, (time.monotonic() - start - LOOP_LAG_INTERVAL_S) * 1000))


async def _on_startup(app: web.Application) -> None:
    if PROVIDERS_KEY not in app:
        app[PROVIDERS_KEY] = build_providers(app[SETTINGS_KEY])
    providers = app[PROVIDERS_KEY]
    for engine in (providers.stt, providers.llm, providers.tts):
        warm_up = getattr(engine, "warm_up", None)
        if warm_up is not None:
            await warm_up()
    app[BACKGROUND_KEY].append(asyncio.create_task(_watch_loop_lag(app)))


async def _on_shutdown(app: web.Application) -> None:
    await app[REGISTRY_KEY].close_all("shutdown")


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
) -> web.Application:
    """The aiohttp app. Pass ``providers`` to share engines (tests do); the
    app then leaves closing them to the caller."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS_KEY] = settings
    app[AGENTS_KEY] = agents if agents is not None else load_agents(settings.agents_file)
    app[REGISTRY_KEY] = SessionRegistry(settings.max_sessions)
    app[METRICS_KEY] = Metrics()
    app[BACKGROUND_KEY] = []
    app[OWNS_PROVIDERS_KEY] = providers is None
    if providers is not None:
        app[PROVIDERS_KEY] = providers
    app.router.add_get("/", index)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_post("/api/offer", offer)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_static("/static", STATIC_DIR, name="static")
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
