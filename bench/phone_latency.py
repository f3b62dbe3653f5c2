"""The phone row of ``bench.latency``: the same turns over Twilio Media Streams.

A fake Twilio (tests/fakes/phone_client.py: the real JSON protocol over a
real WebSocket, μ-law, real-time pacing) calls the server through its
signed voice webhook, waits out the greeting, then speaks the same
utterance and times, per turn, the last voiced frame it sent to the first
voiced frame of the reply it received, as the WebRTC client does.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from signaling.twilio_webhook import twilio_signature
from tests.fakes.phone_client import PhoneClient, stream_of_twiml

AUTH_TOKEN = "bench-twilio-auth-token"
FORM = {"CallSid": "CA" + "2" * 32, "From": "+15550001111", "To": "+15550002222"}


async def _dial(base_url: str, agent: str) -> PhoneClient:
    url = f"{base_url}/telephony/twilio/voice?agent={agent}"
    signature = twilio_signature(AUTH_TOKEN, url, FORM.items())
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=FORM, headers={"X-Twilio-Signature": signature}) as r:
            twiml = await r.text()
            if r.status != 200:
                raise RuntimeError(f"webhook answered {r.status}: {twiml[:200]}")
    client = PhoneClient("twilio")
    await client.connect(*stream_of_twiml(twiml))
    return client


async def _until_quiet(client: PhoneClient, quiet_s: float, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            voiced = [h.at for h in client.audio if h.voiced]
            if voiced and time.monotonic() - voiced[-1] > quiet_s:
                return
            await asyncio.sleep(0.05)


async def phone_turns(base_url: str, agent: str, speech48k: bytes, tail_s: float, turns: int):
    """Per turn: ms from the end of speech to the first voiced reply frame."""
    client = await _dial(base_url, agent)
    e2e: list[float] = []
    try:
        await _until_quiet(client, 0.8)  # the greeting
        for _ in range(turns):
            client.say(speech48k)
            await asyncio.wait_for(client.speech_sent.wait(), 30)
            speech_end = client.speech_sent_at - tail_s
            async with asyncio.timeout(30):
                while not client.voiced_since(speech_end):  # noqa: ASYNC110 - times are arrival stamps
                    await asyncio.sleep(0.005)
            first = client.voiced_since(speech_end)[0].at
            e2e.append((first - speech_end) * 1000)
            await _until_quiet(client, 0.8)
    finally:
        await client.hang_up()
    return e2e
