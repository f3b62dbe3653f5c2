"""A loopback fake of ElevenLabs' streaming text-to-speech API.

Start it with ``server = await start_elevenlabs_fake(**knobs)``; point the
provider at ``server.base_url`` (the origin, like ``ELEVENLABS_BASE_URL``).

Routes:

- ``POST /v1/text-to-speech/{voice_id}/stream`` (and the non-streaming
  ``/v1/text-to-speech/{voice_id}``): checks ``xi-api-key``, a JSON body with
  ``text`` (422 FastAPI-style when missing) and optional ``model_id`` /
  ``voice_settings``, and the ``output_format`` query parameter
  (``mp3_<rate>_<kbps>`` -> ``audio/mpeg`` real MP3 bytes; ``pcm_<rate>`` ->
  s16le mono). The body is sent chunked, ``chunk_size`` bytes at a time.

Errors look like ElevenLabs': ``{"detail": {"status": "...", "message": "..."}}``;
quota is ``fail_next(401, code="quota_exceeded")`` as the real service does.

Knobs beyond the common ones in ``http_fake.Knobs``:

- ``audio``: MP3 bytes to serve (default: ``mp3_fixture.mp3_bytes()``, a
  harmonic tone at the requested rate)
- ``speak_text``: synthesize the request's text with espeak-ng when the
  embedded TTS module offers it (falls back to the tone)
- ``voices``: None accepts any voice id; a set limits them (others: 404
  ``voice_not_found``)
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .http_fake import REC, FakeServer, Knobs, RecordedRequest
from .mp3_fixture import mp3_bytes, tone_pcm

_ERROR_STATUS = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "payment_required",
    403: "forbidden",
    404: "voice_not_found",
    422: "invalid_request",
    429: "too_many_concurrent_requests",
}
_MP3_FORMAT = re.compile(r"^mp3_(\d+)_(\d+)$")
_PCM_FORMAT = re.compile(r"^pcm_(\d+)$")


@dataclass
class ElevenLabsKnobs(Knobs):
    audio: bytes | None = None
    speak_text: bool = False
    voices: set[str] | None = None


class ElevenLabsFake(FakeServer):
    knobs: ElevenLabsKnobs

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._tts)
        app.router.add_post("/v1/text-to-speech/{voice_id}", self._tts)

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("xi-api-key")

    def error_response(
        self, request: web.Request, status: int, message: str, code: str | None
    ) -> web.Response:
        status_name = code or _ERROR_STATUS.get(status, "internal_server_error")
        if status == 401 and code is None:
            message = f"Invalid API key: {self.presented_key(request) or ''}"
        elif code == "quota_exceeded":
            message = "This request exceeds your quota of 10000. You have 0 credits remaining."
        body = {"detail": {"status": status_name, "message": message}}
        return web.json_response(body, status=status)

    async def _tts(self, request: web.Request) -> web.StreamResponse:
        rec: RecordedRequest = request[REC]
        k = self.knobs
        voice_id = request.match_info["voice_id"]
        body = rec.json
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            detail = [{"loc": ["body", "text"], "msg": "field required", "type": "missing"}]
            return web.json_response({"detail": detail}, status=422)
        if k.voices is not None and voice_id not in k.voices:
            msg = f"A voice with the voice_id {voice_id} was not found."
            return self.error_response(request, 404, msg, "voice_not_found")
        fmt = request.query.get("output_format", "mp3_44100_128")
        if m := _MP3_FORMAT.match(fmt):
            rate = int(m.group(1))
            if k.audio is not None:
                data = k.audio
            else:
                spoken = body["text"] if k.speak_text else None
                # Encoding (and espeak) is blocking work: keep it off the loop.
                data = await asyncio.to_thread(mp3_bytes, 1.0, rate, spoken)
            ctype = "audio/mpeg"
        elif m := _PCM_FORMAT.match(fmt):
            data, ctype = tone_pcm(1.0, int(m.group(1))), "audio/pcm"
        else:
            msg = f"Invalid output format: {fmt}"
            return self.error_response(request, 400, msg, "invalid_output_format")
        return await self.send_body(request, data, content_type=ctype)


async def start_elevenlabs_fake(**knobs: Any) -> ElevenLabsFake:
    """Start the fake on 127.0.0.1 (free port); keyword arguments set ``ElevenLabsKnobs``."""
    return await ElevenLabsFake(ElevenLabsKnobs(**knobs)).start()
