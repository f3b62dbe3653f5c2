"""POST /api/offer: admit, read, check and answer one SDP offer.

Every refusal is a JSON 4xx with a code the page understands (DESIGN.md §8);
an answer creates a ``VoiceSession`` and registers it. Nothing here touches
audio: the session takes it from the answer on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from media_server.metrics import Metrics
from media_server.rtc.peer import OfferError
from media_server.session import VoiceSession
from signaling.limits import origin_allowed, retry_after_header
from signaling.registry import CapacityError, SessionRegistry, ShuttingDown
from signaling.sdp import SdpError, check_offer_sdp
from signaling.shared import SharedState, SharedStateUnavailable
from signaling.state import (
    ACTING_KEY,
    AGENTS_KEY,
    MAX_BODY_BYTES,
    METRICS_KEY,
    PROVIDERS_KEY,
    RATE_LIMITER_KEY,
    REGISTRY_KEY,
    SETTINGS_KEY,
    SHARED_KEY,
    TOKENS_KEY,
    VAD_POOL_KEY,
    json_error,
)
from signaling.tokens import CheckedToken, TokenError, TokenVerifier

if TYPE_CHECKING:
    from media_server.agents import Agent
    from media_server.tools.acting import SessionActing
    from media_server.transport import CallTransport

log = logging.getLogger(__name__)


def _reject(status: int, code: str, message: str, **headers: str) -> Reject:
    response = json_error(status, code, message, **headers)
    # The body was not read (or not all of it): close the connection after
    # the answer instead of keeping it alive behind unread bytes. aiohttp
    # still drains a little (lingering close) so the client sees the answer.
    response.force_close()
    return Reject(response)


def _too_large() -> Reject:
    reject = _reject(413, "body_too_large", f"Body is larger than {MAX_BODY_BYTES} bytes.")
    reject.abort = True
    return reject


async def admit(request: web.Request) -> None:
    """Checks that need no body: shutdown, per-IP rate, Origin (DESIGN.md §8)."""
    app = request.app
    if app[REGISTRY_KEY].closing:
        raise _reject(503, "shutting_down", "The server is shutting down.", **{"Retry-After": "5"})
    client = request.remote or "unknown"
    shared: SharedState | None = app[SHARED_KEY]
    if shared is None:
        wait_s = app[RATE_LIMITER_KEY].acquire(client)
    else:
        try:
            wait_s = await shared.take_rate(client, app[SETTINGS_KEY].rate_limit_per_minute)
        except SharedStateUnavailable as exc:
            raise _shared_unavailable(exc) from None
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
        raise Reject(json_error(400, "bad_json", "The body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise Reject(json_error(400, "bad_request", "The body must be a JSON object."))
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


class Reject(Exception):
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
    except Reject as reject:
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
    await admit(request)
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
        # token usable.
        refused = await _spend(verifier, token, app[SHARED_KEY])
        if refused is not None:
            registry.release_reservation()
            return refused
    m: Metrics = app[METRICS_KEY]
    acting = app[ACTING_KEY].for_session(session_id, agent) if ACTING_KEY in app else None
    session = await open_session(app, session_id, agent, acting=acting)
    try:
        answer_sdp = await session.accept(sdp)
    except OfferError as exc:
        await session.close("bad_offer")
        return json_error(400, "bad_sdp", f"The offer could not be used ({exc}).")
    except BaseException:
        await session.close("error")
        raise
    m.sessions_total.inc()
    m.calls.labels(transport="webrtc").inc()
    answer = {"sdp": answer_sdp, "type": "answer", "session_id": session_id}
    if acting is not None:
        answer["record_key"] = acting.record_key  # the page's key to its transcript
    return web.json_response(answer)


async def _spend(
    verifier: TokenVerifier, token: CheckedToken, shared: SharedState | None
) -> web.Response | None:
    """Spend the token, everywhere it could be used; the refusal, if any.

    Alone, this process's memory is the truth (no await since check(), so
    two requests cannot both pass). With workers or hosts, the shared spend
    is the atomic one; the local memory then only spares it a round trip."""
    if shared is not None:
        try:
            fresh = await shared.spend_nonce(token.nonce, token.expiry)
        except SharedStateUnavailable as exc:
            return _shared_unavailable(exc).response
        if not fresh:
            return _token_error(
                TokenError("token_used", "The access token was already used; ask for a new one.")
            )
    try:
        verifier.spend(token)
    except TokenError as exc:
        return _token_error(exc)
    return None


def _shared_unavailable(exc: SharedStateUnavailable) -> Reject:
    log.warning("offer refused: shared state unavailable (%s)", exc)
    return _reject(
        503,
        "shared_state_unavailable",
        "The server can't reach its shared state right now; please try again shortly.",
        **{"Retry-After": "5"},
    )


async def open_session(
    app: web.Application,
    session_id: str,
    agent: Agent,
    *,
    acting: SessionActing | None,
    transport: CallTransport | None = None,
) -> VoiceSession:
    """The call's session, in the reserved slot ``session_id`` (WebRTC when
    ``transport`` is None), registered and counted as active. If it cannot
    be made, the slot and the conversation record are given back."""
    registry: SessionRegistry = app[REGISTRY_KEY]
    m: Metrics = app[METRICS_KEY]
    try:
        session = VoiceSession(
            session_id=session_id,
            agent=agent,
            settings=app[SETTINGS_KEY],
            providers=app[PROVIDERS_KEY],
            metrics=m,
            on_closed=functools.partial(session_closed, registry, m),
            vad_pool=app[VAD_POOL_KEY],
            transport=transport,
            acting=acting,
        )
    except BaseException:
        registry.release_reservation()
        if acting is not None:
            await acting.record.close("error")
        raise
    registry.add(session)
    # Each worker counts its own sessions; /metrics sums them ("livesum").
    m.sessions_active.inc()
    return session


def session_closed(registry: SessionRegistry, m: Metrics, session: VoiceSession) -> None:
    registry.remove(session)
    m.sessions_active.dec()
