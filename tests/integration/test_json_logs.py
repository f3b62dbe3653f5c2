"""LOG_FORMAT=json on a running server: a call's lines carry its session id,
also those logged by code that never names the session (here aiohttp's
access log of the offer), and nothing else does."""

from __future__ import annotations

import io
import json
import logging

import aiohttp

from media_server.log_format import make_handler
from tests.voice_client import VoiceClient


async def test_a_calls_lines_carry_its_session_id(server):
    stream = io.StringIO()
    handler = make_handler("json", (), stream)
    loggers = ("aiohttp.access", "media_server.session", "media_server.rtc.call")
    watched = [logging.getLogger(name) for name in loggers]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    client = VoiceClient(server.base_url)
    try:
        await client.connect()
        async with aiohttp.ClientSession() as http, http.get(f"{server.base_url}/health"):
            pass
    finally:
        await client.close()
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_event = {}
    for line in lines:
        key = line["fields"].get("first_request_line", line["event"])
        by_event.setdefault(key, line)
    offer = by_event["POST /api/offer HTTP/1.1"]
    assert offer["event"] == "http_request" and offer["session_id"] == client.session_id
    assert by_event["GET /health HTTP/1.1"]["session_id"] is None
    connected = by_event["session %s: connection %s"]
    assert connected["session_id"] == client.session_id
