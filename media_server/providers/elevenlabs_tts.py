"""Streamed speech from ElevenLabs' ``/v1/text-to-speech/{voice_id}/stream``.

One ``httpx.AsyncClient`` per provider instance (one per process): its pool
keeps the TLS connection alive between sentences, which saves a handshake
(~100-300 ms) on every chunk of a reply. Audio is yielded as bytes arrive
(``aiter_bytes``) so playback can start on the first MP3 frames.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx

from media_server.types import AudioChunk

from . import errors
from .audio_body import audio_chunks
from .base import TTSCapabilities
from .pooling import KEEPALIVE_S, warm_up_imports

log = logging.getLogger(__name__)

_PCM_FORMAT = re.compile(r"^pcm_(\d+)$")
# Enough of an error body for its message; a misbehaving server may send more.
_ERROR_BODY_LIMIT = 8192


class ElevenLabsTTS:
    name = "elevenlabs"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.elevenlabs.io",
        model: str = "eleven_flash_v2_5",
        output_format: str = "mp3_44100_128",
        timeout_s: float = 30.0,
        stability: float = 0.5,
        similarity_boost: float = 0.75,
    ) -> None:
        pcm = _PCM_FORMAT.match(output_format)
        if not (output_format.startswith("mp3_") or pcm):
            # AudioChunk carries only MP3 or PCM; ulaw/opus would need their own decoder.
            raise ValueError(f"output_format must be mp3_* or pcm_*, not {output_format!r}")
        self._api_key = api_key
        self._model = model
        self._output_format = output_format
        self._pcm_rate = int(pcm.group(1)) if pcm else 0
        self.capabilities = TTSCapabilities(
            streaming=True, encoding="pcm" if pcm else "mp3", sample_rate=self._pcm_rate
        )
        self._voice_settings = {"stability": stability, "similarity_boost": similarity_boost}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"xi-api-key": api_key},
            # The read timeout bounds each gap between chunks, not the whole stream.
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(
                max_connections=32, max_keepalive_connections=8, keepalive_expiry=KEEPALIVE_S
            ),
        )
        self._closed = False

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioChunk]:
        """Yield audio as bytes arrive; closing the generator closes the response."""
        if not text.strip():
            return
        if not voice:
            raise errors.ProviderError("tts", "invalid", "tts invalid: no voice id")
        secrets = (self._api_key,)
        path = f"/v1/text-to-speech/{quote(voice, safe='')}/stream"
        accept = "audio/pcm" if self._pcm_rate else "audio/mpeg"
        body = {"text": text, "model_id": self._model, "voice_settings": self._voice_settings}
        try:
            async with self._client.stream(
                "POST",
                path,
                params={"output_format": self._output_format},
                json=body,
                headers={"accept": accept},
            ) as response:
                if response.status_code >= 400:
                    raise await self._status_error(response)
                ctype = response.headers.get("content-type")
                if not errors.is_audio_content_type(ctype):
                    raise errors.bad_output(
                        "tts", f"content-type {ctype!r} is not audio", status=response.status_code
                    )
                audio = audio_chunks(response.aiter_bytes(), pcm_rate=self._pcm_rate)
                async with contextlib.aclosing(audio) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("tts", exc, secrets=secrets) from None

    async def _status_error(self, response: httpx.Response) -> errors.ProviderError:
        raw = b""
        try:
            async for data in response.aiter_bytes():
                raw += data
                if len(raw) >= _ERROR_BODY_LIMIT:
                    break
        except httpx.HTTPError:
            pass  # the status alone is enough to classify
        return errors.status_error(
            "tts",
            response.status_code,
            headers=response.headers,
            body=raw[:_ERROR_BODY_LIMIT],
            secrets=(self._api_key,),
        )

    async def warm_up(self) -> None:
        """Load at start what httpx would load in the first turn."""
        warm_up_imports()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()
