"""Streamed speech from OpenAI's ``/audio/speech`` (or a compatible server).

``mp3`` chunks go to the MP3 decoder in ``media_server/audio``; ``pcm`` is raw
24 kHz s16le mono (the only rate the endpoint produces) and is yielded
sample-aligned so the consumer never sees half a sample.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from media_server.types import AudioChunk

from . import errors
from .audio_body import audio_chunks
from .base import TTSCapabilities
from .openai_client import make_client
from .pooling import warm_up_imports

log = logging.getLogger(__name__)

PCM_RATE = 24000
FORMATS = ("mp3", "pcm")


class OpenAITTS:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = "gpt-4o-mini-tts",
        response_format: str = "mp3",
        timeout_s: float = 30.0,
    ) -> None:
        if response_format not in FORMATS:
            raise ValueError(f"response_format must be one of {FORMATS}, not {response_format!r}")
        self._api_key = api_key
        self._model = model
        self._format = response_format
        self._pcm_rate = PCM_RATE if response_format == "pcm" else 0
        self.capabilities = TTSCapabilities(
            streaming=True, encoding="pcm" if self._pcm_rate else "mp3", sample_rate=self._pcm_rate
        )
        self._client = make_client(api_key=api_key, base_url=base_url, timeout_s=timeout_s)
        self._closed = False

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioChunk]:
        """Yield audio as bytes arrive; closing the generator closes the response."""
        if not text.strip():
            return
        secrets = (self._api_key,)
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self._model, voice=voice, input=text, response_format=self._format
            ) as response:
                ctype = response.headers.get("content-type")
                if not errors.is_audio_content_type(ctype):
                    raise errors.bad_output(
                        "tts", f"content-type {ctype!r} is not audio", status=response.status_code
                    )
                audio = audio_chunks(response.iter_bytes(), pcm_rate=self._pcm_rate)
                async with contextlib.aclosing(audio) as chunks:
                    async for chunk in chunks:
                        yield chunk
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("tts", exc, secrets=secrets) from None

    async def warm_up(self) -> None:
        """Load at start what the SDK would load in the first turn."""
        self._client.audio.speech  # noqa: B018 - the attribute access is the lazy import
        warm_up_imports("openai.types.audio")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()
