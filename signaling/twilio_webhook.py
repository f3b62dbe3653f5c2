"""POST /telephony/twilio/voice: Twilio's voice webhook, answered with TwiML.

A call to our number makes Twilio POST here (form fields: CallSid, From,
To, ...). We check ``X-Twilio-Signature``, pick the agent (``?agent=ID`` on
the webhook URL, else the number called via PHONE_NUMBERS, else
PHONE_AGENT) and answer ``<Connect><Stream>`` to our stream WebSocket with
a one-use token (a <Parameter>: Twilio allows no query string on a Stream
URL), the agent and every other query parameter of the webhook URL passed
through as <Parameter>s. A full server answers ``<Reject reason="busy"/>``.

The signature is Twilio's documented one, HMAC-SHA1 with the account's auth
token over the full URL followed by each form field's name and value in
name order, base64 (https://www.twilio.com/docs/usage/security): ~10 lines,
so the ``twilio`` package (and its HTTP client) is not needed for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from media_server.config import Settings
from media_server.metrics import Metrics
from signaling.state import AGENTS_KEY, METRICS_KEY, REGISTRY_KEY, SETTINGS_KEY
from signaling.tokens import mint_token

log = logging.getLogger(__name__)

PHONE_SECRET_KEY = web.AppKey("phone_secret", str)
STREAM_PATH = "/telephony/twilio/stream"
TWIML = "application/xml"
MAX_PARAMETERS = 16


def twilio_signature(auth_token: str, url: str, fields: Iterable[tuple[str, str]]) -> str:
    """What Twilio puts in X-Twilio-Signature for a POST of ``fields`` to ``url``."""
    # As Twilio's own validators: names in order, each value once, in order.
    payload = url + "".join(name + value for name, value in sorted(set(fields)))
    mac = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def public_url(settings: Settings, request: web.Request) -> str:
    """The URL Twilio called: PUBLIC_URL's scheme and host behind a proxy."""
    if settings.public_url:
        return settings.public_url + request.path_qs
    return str(request.url)


def stream_url(settings: Settings, request: web.Request) -> str:
    base = settings.public_url or f"{request.scheme}://{request.host}"
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + STREAM_PATH


def _twiml(body: str) -> web.Response:
    return web.Response(
        text=f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
        content_type=TWIML,
    )


def _parameter(name: str, value: str) -> str:
    return f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"


async def twilio_voice(request: web.Request) -> web.Response:
    app = request.app
    settings: Settings = app[SETTINGS_KEY]
    m: Metrics = app[METRICS_KEY]
    try:
        form = await request.post()
    except Exception:  # a body that is not a form: Twilio never sends one
        return web.Response(status=400, text="expected a form body")
    fields = [(k, v) for k, v in form.items() if isinstance(v, str)]
    if not settings.twilio_allow_unsigned:
        given = request.headers.get("X-Twilio-Signature", "")
        expected = (
            twilio_signature(settings.twilio_auth_token, public_url(settings, request), fields)
            if settings.twilio_auth_token
            else None
        )
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            m.calls_refused.labels(transport="twilio", reason="bad_signature").inc()
            log.warning("twilio webhook refused: bad or missing X-Twilio-Signature")
            return web.Response(status=403, text="bad signature")
    registry = app[REGISTRY_KEY]
    if registry.closing or len(registry) >= registry.max_sessions:
        m.calls_refused.labels(transport="twilio", reason="busy").inc()
        return _twiml('<Reject reason="busy"/>')
    agent_id = request.query.get("agent") or dict(settings.phone_numbers).get(
        str(form.get("To", "")), settings.phone_agent
    )
    if agent_id not in app[AGENTS_KEY]:
        m.calls_refused.labels(transport="twilio", reason="unknown_agent").inc()
        log.warning("twilio webhook: no agent called %.60r", agent_id)
        return _twiml("<Say>Sorry, this number is not set up yet. Goodbye.</Say><Hangup/>")
    token = mint_token(app[PHONE_SECRET_KEY], settings.token_ttl_s)
    passed = [(k, v) for k, v in request.query.items() if k not in ("agent", "token")]
    params = [("token", token), ("agent", agent_id)]
    params += [(k, str(form.get(k, ""))) for k in ("CallSid", "From", "To")]
    params += passed[:MAX_PARAMETERS]
    url = escape(stream_url(settings, request), {'"': "&quot;"})
    inner = "".join(_parameter(k, v) for k, v in params)
    return _twiml(f'<Connect><Stream url="{url}">{inner}</Stream></Connect>')
