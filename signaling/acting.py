"""The agents' tools and database for the app, and GET /api/sessions/{id}.

The database opens at start (a bad DATABASE_URL or a database newer than
this server stops start-up with one clear line) and closes after every
session has ended. A session's record is read with the key its offer's
answer carried (``record_key``, as ``Authorization: Bearer``), or, on a
server with AUTH_SECRET, with a valid access token (checked, not spent).
"""

from __future__ import annotations

import re

from aiohttp import web

from media_server.store.records import transcript
from media_server.tools.acting import AgentActing, key_hash
from signaling.state import ACTING_KEY, AGENTS_KEY, SETTINGS_KEY, TOKENS_KEY, json_error
from signaling.tokens import TokenError, TokenVerifier

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def _open(app: web.Application) -> None:
    app[ACTING_KEY] = await AgentActing.open(app[SETTINGS_KEY].database_url, app[AGENTS_KEY])


async def _close(app: web.Application) -> None:
    if ACTING_KEY in app:
        await app[ACTING_KEY].close()


async def session_record(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"]
    if not _SESSION_ID.match(session_id):
        return json_error(400, "bad_session_id", "That is not a session id.")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    presented = presented.strip() if scheme.lower() == "bearer" else ""
    if not presented:
        return json_error(
            401,
            "unauthorized",
            "Send the session's record_key (or an access token) as a Bearer token.",
            **{"WWW-Authenticate": 'Bearer realm="voice-agent"'},
        )
    verifier: TokenVerifier | None = request.app[TOKENS_KEY]
    by_token = False
    if verifier is not None:
        try:
            verifier.check(presented)
            by_token = True
        except TokenError:
            pass
    record = await transcript(
        request.app[ACTING_KEY].db, session_id, None if by_token else key_hash(presented)
    )
    if record is None:  # unknown, or not this key's: the same answer either way
        return json_error(404, "not_found", "No record of that session for this key.")
    return web.json_response(record)


def install(app: web.Application) -> None:
    # First: a database that cannot be opened stops start-up before the
    # engines spend seconds loading.
    app.on_startup.insert(0, _open)
    app.on_cleanup.append(_close)
    app.router.add_get("/api/sessions/{session_id}", session_record)
