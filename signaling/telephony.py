"""The phone streams: Twilio's (GET /telephony/twilio/stream) and the generic
L16 one (GET /telephony/pcm), each a WebSocket that becomes one call.

Nothing is spent before the stream's ``start`` arrives with a good token:
Twilio's is the one-use token our webhook minted (a custom parameter); the
generic stream takes a ``voice-agent token`` when AUTH_SECRET is set. A
token opens one call on any worker (the shared state spends its nonce), a
full server refuses the stream, and the call's end frees its slot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from aiohttp import WSMsgType, web

from media_server.metrics import Metrics
from media_server.session import VoiceSession
from media_server.telephony.call import PhoneCall, PhoneLine
from media_server.telephony.call_tools import CallControl
from media_server.telephony.line import Carrier, LineError, Started
from media_server.telephony.pcm_ws import PcmWsCarrier
from media_server.telephony.twilio import TwilioCarrier
from media_server.tools.registry import Toolbox
from signaling.offer import Reject as Rejected
from signaling.offer import admit, open_session
from signaling.registry import CapacityError, SessionRegistry
from signaling.shared import SharedState, SharedStateUnavailable
from signaling.state import (
    ACTING_KEY,
    AGENTS_KEY,
    METRICS_KEY,
    REGISTRY_KEY,
    SETTINGS_KEY,
    SHARED_KEY,
    TOKENS_KEY,
)
from signaling.tokens import TokenError, TokenVerifier

log = logging.getLogger(__name__)

PHONE_TOKENS_KEY = web.AppKey("phone_tokens", TokenVerifier)
START_TIMEOUT_S = 10.0  # the stream's start message, after the upgrade
MAX_MESSAGE_BYTES = 128 * 1024
MAX_BAD_MESSAGES = 50  # then the stream is not a carrier's: hang up
POLICY_VIOLATION = 1008  # WebSocket close codes
TRY_AGAIN_LATER = 1013


class Refused(Exception):
    def __init__(self, reason: str, code: int = POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


async def twilio_stream(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    carrier = TwilioCarrier(settings.twilio_api_base, settings.twilio_auth_token)
    return await _serve(request, carrier, _twilio_token)


async def pcm_stream(request: web.Request) -> web.StreamResponse:
    # Open to any client without AUTH_SECRET, as offers are: the same
    # per-address rate limit, drain and Origin checks first.
    try:
        await admit(request)
    except Rejected as rejected:
        return rejected.response
    return await _serve(request, PcmWsCarrier(), _pcm_token)


def _twilio_token(request: web.Request, started: Started) -> tuple[TokenVerifier | None, Any]:
    return request.app[PHONE_TOKENS_KEY], started.parameters.get("token")


def _pcm_token(request: web.Request, started: Started) -> tuple[TokenVerifier | None, Any]:
    return request.app[TOKENS_KEY], started.parameters.get("token") or request.query.get("token")


async def _serve(request: web.Request, carrier: Carrier, token_of: Any) -> web.StreamResponse:
    app = request.app
    m: Metrics = app[METRICS_KEY]
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    call: PhoneCall | None = None
    try:
        started = await _wait_start(ws, carrier)
        verifier, token = token_of(request, started)
        agent = _agent(request, started)
        session, line, control = await _open_call(
            request, carrier, started, verifier, token, agent, ws
        )
        call = PhoneCall(session, line, control)
        await session.start()
        call.answer()
        await _pump(ws, carrier, line)
        await session.close("caller_hung_up")
    except Refused as refused:
        m.calls_refused.labels(transport=carrier.name, reason=refused.reason).inc()
        log.info("%s stream refused: %s", carrier.name, refused.reason)
        await ws.close(code=refused.code, message=refused.reason.encode())
    finally:
        if call is not None:
            await call.session.close("line_closed")  # no-op when already closed
    return ws


async def _wait_start(ws: web.WebSocketResponse, carrier: Carrier) -> Started:
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    event = carrier.parse(msg.data)
                except LineError as exc:
                    raise Refused("bad_message") from exc
                if isinstance(event, Started):
                    return event
                if event is not None:
                    raise Refused("no_start")
    except TimeoutError:
        raise Refused("no_start") from None
    raise Refused("no_start")


def _agent(request: web.Request, started: Started) -> Any:
    agents = request.app[AGENTS_KEY]
    agent_id = (
        started.parameters.get("agent")
        or request.query.get("agent")
        or request.app[SETTINGS_KEY].phone_agent
    )
    agent = agents.get(agent_id)
    if agent is None:
        raise Refused("unknown_agent")
    return agent


async def _open_call(
    request: web.Request,
    carrier: Carrier,
    started: Started,
    verifier: TokenVerifier | None,
    token: Any,
    agent: Any,
    ws: web.WebSocketResponse,
) -> tuple[VoiceSession, PhoneLine, CallControl | None]:
    app = request.app
    checked = None
    if verifier is not None:
        try:
            checked = verifier.check(token)
        except TokenError as exc:
            raise Refused(exc.code) from None
    registry: SessionRegistry = app[REGISTRY_KEY]
    try:
        session_id = registry.reserve()
    except CapacityError:
        raise Refused("busy", TRY_AGAIN_LATER) from None
    acting = None
    try:
        if verifier is not None and checked is not None:
            await _spend(verifier, checked, app[SHARED_KEY])
        # The agent's tools and a conversation record, as on a WebRTC call.
        acting = app[ACTING_KEY].for_session(session_id, agent) if ACTING_KEY in app else None
        line = PhoneLine(
            carrier, started, send_str=ws.send_str, send_bytes=ws.send_bytes, close_ws=ws.close
        )
        control = None
        if acting is not None:
            # Hanging up and transferring: this call's own tools, beside the agent's.
            control = CallControl(line, agent.transfer_number)
            base = acting.tools if acting.tools is not None else Toolbox()
            acting = dataclasses.replace(acting, tools=base.with_tools(*control.tools()))
    except BaseException:
        registry.release_reservation()
        if acting is not None:
            await acting.record.close("error")
        raise
    session = await open_session(app, session_id, agent, acting=acting, transport=line)
    m: Metrics = app[METRICS_KEY]
    m.sessions_total.inc()
    m.calls.labels(transport=carrier.name).inc()
    log.info("%s call %s answered by %s", carrier.name, started.call_id[:64], agent.id)
    return session, line, control


async def _spend(verifier: TokenVerifier, token: Any, shared: SharedState | None) -> None:
    """Spend the token everywhere it could be used (see offer._spend)."""
    if shared is not None:
        try:
            fresh = await shared.spend_nonce(token.nonce, token.expiry)
        except SharedStateUnavailable:
            raise Refused("shared_state_unavailable", TRY_AGAIN_LATER) from None
        if not fresh:
            raise Refused("token_used")
    try:
        verifier.spend(token)
    except TokenError as exc:
        raise Refused(exc.code) from None


async def _pump(ws: web.WebSocketResponse, carrier: Carrier, line: PhoneLine) -> None:
    """The stream's messages into the line, until the caller or we hang up."""
    bad = 0
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        try:
            event = carrier.parse(msg.data)
        except LineError as exc:
            bad += 1
            if bad == 1:
                log.info("%s: message ignored (%s)", carrier.name, exc)
            if bad >= MAX_BAD_MESSAGES:
                return
            continue
        if not line.feed(event):
            return
