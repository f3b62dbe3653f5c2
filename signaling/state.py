"""What the HTTP handlers share: the app's state keys, limits and JSON errors."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from aiohttp import web

from media_server.config import Settings
from media_server.ice_servers import IceServers
from media_server.listening.vad import SileroPool
from media_server.metrics import Metrics
from media_server.providers.base import Providers
from signaling.limits import RateLimiter
from signaling.registry import SessionRegistry
from signaling.tokens import TokenVerifier

MAX_BODY_BYTES = 64 * 1024
# The page ships inside the package (wheel package data), found the same way
# from a clone, a wheel or a zipapp-free install; aiohttp serves files from a
# real directory, which an installed wheel always is.
STATIC_DIR = Path(str(importlib.resources.files("signaling") / "static"))
LOOP_LAG_INTERVAL_S = 0.25

SETTINGS_KEY = web.AppKey("settings", Settings)
AGENTS_KEY = web.AppKey("agents", dict)
PROVIDERS_KEY = web.AppKey("providers", Providers)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
METRICS_KEY = web.AppKey("metrics", Metrics)
BACKGROUND_KEY = web.AppKey("background", list)
OWNS_PROVIDERS_KEY = web.AppKey("owns_providers", bool)
RATE_LIMITER_KEY = web.AppKey("rate_limiter", RateLimiter)
VAD_POOL_KEY = web.AppKey("vad_pool", SileroPool)
ICE_SERVERS_KEY = web.AppKey("ice_servers", IceServers)
TOKENS_KEY = web.AppKey("tokens", TokenVerifier | None)  # type: ignore[arg-type]
# What workers and hosts share (signaling/shared); None: this process is all there is.
SHARED_KEY = web.AppKey("shared", object)
ACTING_KEY = web.AppKey("acting", object)  # media_server.tools.acting.AgentActing

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
