"""Twilio's REST API, the part a transfer uses, on loopback.

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with a form
body, HTTP basic auth (AccountSid : auth token) checked as Twilio does
(401 with Twilio's error JSON otherwise), ``Twiml`` required (400 with
Twilio's code 21626-style error otherwise). Each request is recorded.
``status`` forces an answer (e.g. 503) to test a failed transfer.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class UpdateCall:
    account_sid: str
    call_sid: str
    user: str
    form: dict[str, str]
    at: float  # time.monotonic() on arrival


class TwilioRestFake:
    def __init__(self, auth_token: str, *, status: int | None = None) -> None:
        self.auth_token = auth_token
        self.status = status
        self.updates: list[UpdateCall] = []
        self.refused: list[int] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TwilioRestFake:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", self._update_call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _error(self, status: int, code: int, message: str) -> web.Response:
        self.refused.append(status)
        body = {"code": code, "message": message, "status": status}
        return web.json_response(body, status=status)

    async def _update_call(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        user, password = _basic_auth(request.headers.get("Authorization", ""))
        if user != account or password != self.auth_token:
            return self._error(401, 20003, "Authenticate")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._error(400, 20001, "expected a form body")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not form.get("Twiml"):
            return self._error(400, 21626, "Twiml or Url is required")
        call_sid = request.match_info["call"]
        self.updates.append(UpdateCall(account, call_sid, user, form, time.monotonic()))
        if self.status is not None:
            return self._error(self.status, 20500, "Internal Server Error")
        call = {"sid": request.match_info["call"], "account_sid": account, "status": "in-progress"}
        return web.json_response(call)


def _basic_auth(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return "", ""
    return user, password


async def start_twilio_rest_fake(auth_token: str, **knobs) -> TwilioRestFake:
    return await TwilioRestFake(auth_token, **knobs).start()
