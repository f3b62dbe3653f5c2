"""Twilio's REST API, the one request a call needs: send it elsewhere.

``POST {api}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with
``Twiml=<Response><Dial>NUMBER</Dial></Response>`` replaces the live call's
instructions: the media stream stops and Twilio dials the number
(https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource).
HTTP basic auth is the AccountSid and the auth token. One short-lived
aiohttp session per transfer: a transfer ends the call, so nothing is reused.
"""

from __future__ import annotations

import logging
import re
from xml.sax.saxutils import escape

import aiohttp

from media_server.telephony.line import TransferFailed

log = logging.getLogger(__name__)

TIMEOUT_S = 8.0  # under the tool's own deadline, so the model hears why
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")  # goes into the URL's path


def dial_twiml(number: str) -> str:
    return f"<Response><Dial>{escape(number)}</Dial></Response>"


async def dial(
    api_base: str, auth_token: str, account_sid: str, call_sid: str, number: str
) -> None:
    """Redirect call ``call_sid`` to ``number``; raises ``TransferFailed``."""
    if not auth_token:
        raise TransferFailed("transfers need TWILIO_AUTH_TOKEN on the server")
    if not _SID.match(account_sid) or not _SID.match(call_sid):
        raise TransferFailed("the call's stream did not say which Twilio call it is")
    url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
            http.post(
                url,
                data={"Twiml": dial_twiml(number)},
                headers={"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)},
            ) as response,
        ):
            if response.status >= 300:
                log.warning("twilio: transfer refused (HTTP %d)", response.status)
                raise TransferFailed(f"the phone company refused the transfer ({response.status})")
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("twilio: transfer request failed (%s)", type(exc).__name__)
        raise TransferFailed("the phone company could not be reached") from None
