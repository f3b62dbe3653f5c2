"""Speech to text through OpenAI's transcriptions endpoint (or any compatible server).

Whisper invents text for near-silence ("Thank you for watching.", "you"), so
two guards sit in front of the words reaching the LLM:

- an utterance that is too short or too quiet is never sent (no request, an
  empty transcript, and the turn goes back to idle);
- where the model supports ``verbose_json`` (whisper-1), segments whose
  ``no_speech_prob`` is above the threshold are dropped. The gpt-4o-*transcribe
  models only answer ``json``/``text``; some compatible servers refuse
  ``verbose_json`` too, so a 400/422 to it is retried once as ``json`` and,
  if that works, the provider stops asking for it.
"""

from __future__ import annotations

import io
import logging
import wave
from typing import Any

import openai

from media_server.types import Transcript, Utterance

from . import errors
from .base import STTCapabilities
from .openai_client import make_client
from .pooling import warm_up_imports

log = logging.getLogger(__name__)


def utterance_wav(utterance: Utterance) -> bytes:
    """The utterance as an in-memory 16-bit mono WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(utterance.sample_rate)
        w.writeframes(utterance.pcm)
    return buf.getvalue()


def supports_verbose_json(model: str) -> bool:
    # gpt-4o-transcribe, gpt-4o-mini-transcribe and their dated snapshots
    # accept only json/text (OpenAI API reference, createTranscription).
    return not (model.startswith("gpt-") or "transcribe" in model)


class OpenAISTT:
    name = "openai"
    # One request per finished utterance; the endpoint does not stream input.
    capabilities = STTCapabilities(streaming=False)

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = "whisper-1",
        language: str | None = None,
        min_duration_s: float = 0.3,
        min_peak_dbfs: float = -45.0,
        no_speech_threshold: float = 0.6,
        timeout_s: float = 30.0,
    ) -> None:
        self._api_key = api_key
        self._model = model
        self._language = language or None
        self._min_duration_s = min_duration_s
        self._min_peak_dbfs = min_peak_dbfs
        self._no_speech_threshold = no_speech_threshold
        self._verbose = supports_verbose_json(model)
        # Whether the json fallback for a refused verbose_json was already tried.
        self._fallback_tried = False
        self._client = make_client(api_key=api_key, base_url=base_url, timeout_s=timeout_s)
        self._closed = False

    def worth_sending(self, utterance: Utterance) -> bool:
        return (
            utterance.duration_s >= self._min_duration_s
            and utterance.peak_dbfs >= self._min_peak_dbfs
        )

    async def transcribe(self, utterance: Utterance) -> Transcript:
        if not self.worth_sending(utterance):
            log.debug(
                "stt: skipped %.2f s utterance at %.1f dBFS (too short or too quiet)",
                utterance.duration_s,
                utterance.peak_dbfs,
            )
            return Transcript("")
        wav = utterance_wav(utterance)
        fmt = "verbose_json" if self._verbose else "json"
        try:
            try:
                result = await self._request(wav, fmt)
            except (openai.BadRequestError, openai.UnprocessableEntityError):
                if fmt != "verbose_json" or self._fallback_tried:
                    raise
                self._fallback_tried = True
                result = await self._request(wav, "json")
                log.info("stt: server refused verbose_json; using json from now on")
                self._verbose = False
        except errors.KNOWN_ERRORS as exc:
            raise errors.from_exception("stt", exc, secrets=(self._api_key,)) from None
        return self._parse(result)

    async def _request(self, wav: bytes, fmt: str) -> Any:
        kwargs: dict[str, Any] = {}
        if self._language:
            kwargs["language"] = self._language
        return await self._client.audio.transcriptions.create(
            file=("utterance.wav", wav, "audio/wav"),
            model=self._model,
            response_format=fmt,  # type: ignore[arg-type]
            **kwargs,
        )

    def _parse(self, result: Any) -> Transcript:
        if isinstance(result, str):
            # The SDK hands back the raw body when it is not JSON: we asked for JSON,
            # so this is an error page (a proxy, a portal), not a transcript.
            raise errors.bad_output("stt", "transcription body is not JSON")
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise errors.bad_output("stt", "transcription without text")
        language = getattr(result, "language", None) or self._language
        segments = getattr(result, "segments", None)
        if segments:
            kept = [s for s in segments if not self._is_no_speech(s)]
            if len(kept) < len(segments):
                log.debug("stt: dropped %d no-speech segment(s)", len(segments) - len(kept))
            text = "".join(str(getattr(s, "text", "") or "") for s in kept)
        return Transcript(" ".join(text.split()), language)

    def _is_no_speech(self, segment: Any) -> bool:
        prob = getattr(segment, "no_speech_prob", None)
        return isinstance(prob, (int, float)) and prob > self._no_speech_threshold

    def open_stream(self) -> None:
        """Not a streaming engine: the turn transcribes the whole utterance."""
        return None

    async def warm_up(self) -> None:
        """Load at start what the SDK would load in the first turn."""
        self._client.audio.transcriptions  # noqa: B018 - the attribute access is the lazy import
        warm_up_imports("openai.types.audio")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()
