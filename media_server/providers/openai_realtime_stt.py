"""Speech to text through OpenAI's realtime transcription (WebSocket), with batch fallback.

``STT_PROVIDER=openai-realtime``: a turn's audio is streamed while it is
spoken (``input_audio_buffer.append``, PCM16 at 24 kHz) to a transcription
session of the ``openai`` SDK's realtime client (``intent=transcription``,
``gpt-4o-transcribe`` / ``gpt-4o-mini-transcribe``), with the server's own
turn detection off: our listener decides when a turn ends.

At each pause (``interim()``) the audio so far is committed and transcribed
(``conversation.item.input_audio_transcription.delta``/``completed``), so
the page and the end-of-turn policy read the words. At the end of the turn
(``finish()``) only audio after the last commit is left; if it is silence
(the pause that ended the turn, below ``SILENT_PEAK_DBFS``) nothing more is
asked and the transcript is ready at once; else it is committed and waited
for. Any failure (refused connection, an ``error`` event, a stream falling
behind) fails the stream, and the turn transcribes the whole utterance with
``transcribe()``: the batch endpoint (openai_stt.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Any

from media_server.audio.dbfs import peak_dbfs
from media_server.audio.pcm import PcmResampler
from media_server.types import ProviderError, Transcript, Utterance

from .base import STTCapabilities
from .openai_client import make_client
from .openai_stt import OpenAISTT

log = logging.getLogger(__name__)

RATE = 24000  # the realtime API's PCM16 rate
MIN_COMMIT_BYTES = RATE * 2 // 10  # the API refuses to commit under 100 ms
SILENT_PEAK_DBFS = -45.0  # audio after the last commit this quiet is the pause itself
CONNECT_TIMEOUT_S = 5.0
OUTBOX_BOUND = 1500  # 30 s of 20 ms pieces waiting for the socket: then it has failed
_COMMIT = object()
_ERROR_KINDS = {
    "invalid_request_error": "invalid",
    "authentication_error": "auth",
    "permission_error": "auth",
    "rate_limit_error": "rate_limited",
    "insufficient_quota": "quota",
}


class RealtimeStream:
    """One turn's transcription session (SpeechToTextStream)."""

    def __init__(self, client: Any, model: str, language: str | None) -> None:
        self._client = client
        self._model = model
        self._language = language
        self._resampler = PcmResampler(16000, 1, RATE)
        self._outbox: asyncio.Queue[object] = asyncio.Queue(OUTBOX_BOUND)
        self._commits = 0  # sent
        self._order: list[str] = []  # item ids, in commit order
        self._partial: dict[str, str] = {}  # item id -> deltas so far
        self._done: dict[str, str] = {}  # item id -> completed transcript
        self._error: ProviderError | None = None
        self._progress = asyncio.Event()
        self._tail_bytes = 0  # appended since the last commit
        self._tail_peak = -120.0
        self._task = asyncio.create_task(self._run(), name="openai-realtime-stt")

    # ---- SpeechToTextStream ----------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if self._error is not None or self._task.done():
            return
        pcm24 = self._resampler.convert(pcm)
        if not pcm24:
            return
        try:
            self._outbox.put_nowait(pcm24)
        except asyncio.QueueFull:
            self._fail(ProviderError("stt", "unavailable", "realtime stt: fell behind the audio"))
            return
        self._tail_bytes += len(pcm24)
        self._tail_peak = max(self._tail_peak, peak_dbfs(pcm24))

    async def interim(self) -> Transcript:
        """The words so far: what was said since the last commit is committed."""
        self._commit_tail(only_voiced=False)
        return await self._transcript(partial=True)

    async def finish(self) -> Transcript:
        self._commit_tail(only_voiced=True)
        try:
            return await self._transcript(partial=False)
        finally:
            self._close()

    def cancel(self) -> None:
        self._close()
        self._task.cancel()

    # ---- internals ---------------------------------------------------------

    def _commit_tail(self, *, only_voiced: bool) -> None:
        if self._error is not None or self._tail_bytes < MIN_COMMIT_BYTES:
            return
        if only_voiced and self._tail_peak < SILENT_PEAK_DBFS:
            return  # the pause that ended the turn: nothing to transcribe
        try:
            self._outbox.put_nowait(_COMMIT)
        except asyncio.QueueFull:
            self._fail(ProviderError("stt", "unavailable", "realtime stt: fell behind the audio"))
            return
        self._commits += 1
        self._tail_bytes, self._tail_peak = 0, -120.0

    async def _transcript(self, *, partial: bool) -> Transcript:
        """Once every commit so far is transcribed (the caller's deadline bounds it)."""
        while self._error is None and len(self._done) < self._commits:
            self._progress.clear()
            await self._progress.wait()
        if self._error is not None:
            raise self._error
        texts = [
            self._done.get(i) or (self._partial.get(i, "") if partial else "") for i in self._order
        ]
        return Transcript(" ".join(" ".join(texts).split()), self._language)

    def _close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)

    def _fail(self, err: ProviderError) -> None:
        if self._error is None:
            self._error = err
            log.info("realtime stt failed: %s", err)
        self._progress.set()
        self._task.cancel()

    async def _run(self) -> None:
        audio: dict[str, Any] = {
            "format": {"type": "audio/pcm", "rate": RATE},
            "transcription": {
                "model": self._model,
                **({"language": self._language} if self._language else {}),
            },
            "turn_detection": None,
        }
        try:
            manager = self._client.realtime.connect(
                extra_query={"intent": "transcription"},
                max_retries=0,
                websocket_connection_options={"open_timeout": CONNECT_TIMEOUT_S},
            )
            async with manager as conn:
                await conn.session.update(
                    session={"type": "transcription", "audio": {"input": audio}}
                )
                reader = asyncio.create_task(self._read(conn))
                try:
                    while (item := await self._outbox.get()) is not None:
                        if item is _COMMIT:
                            await conn.input_audio_buffer.commit()
                        else:
                            encoded = base64.b64encode(item).decode()  # type: ignore[arg-type]
                            await conn.input_audio_buffer.append(audio=encoded)
                    # Finished: the last transcripts may still be on their way.
                    while self._error is None and len(self._done) < self._commits:
                        await asyncio.wait({reader}, timeout=0.05)
                        if reader.done():
                            break
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
        except asyncio.CancelledError:
            raise
        except ProviderError as err:
            self._fail(err)
        except Exception as exc:  # the SDK's, websockets' and the socket's errors alike
            self._fail(_connection_error(exc))

    async def _read(self, conn: Any) -> None:
        async for event in conn:
            kind = getattr(event, "type", "")
            if kind == "input_audio_buffer.committed":
                self._order.append(event.item_id)
            elif kind == "conversation.item.input_audio_transcription.delta":
                self._partial[event.item_id] = self._partial.get(event.item_id, "") + (
                    event.delta or ""
                )
            elif kind == "conversation.item.input_audio_transcription.completed":
                self._done[event.item_id] = event.transcript or ""
            elif kind == "conversation.item.input_audio_transcription.failed":
                self._fail(
                    ProviderError("stt", "unavailable", "realtime stt: transcription failed")
                )
            elif kind == "error":
                err = event.error
                kind_ = _ERROR_KINDS.get(getattr(err, "type", ""), "unavailable")
                code = getattr(err, "code", None) or getattr(err, "type", "error")
                self._fail(ProviderError("stt", kind_, f"realtime stt: {code}"))  # type: ignore[arg-type]
            self._progress.set()
        self._fail(ProviderError("stt", "unavailable", "realtime stt: connection closed"))


def _connection_error(exc: Exception) -> ProviderError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    kind = {401: "auth", 403: "auth", 429: "rate_limited"}.get(status or 0, "unavailable")
    return ProviderError("stt", kind, f"realtime stt: {type(exc).__name__} {status or ''}".strip())  # type: ignore[arg-type]


class OpenAIRealtimeSTT:
    name = "openai-realtime"
    # An interim commits the audio so far and waits for its transcript.
    capabilities = STTCapabilities(streaming=True, final_interims=True)

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        batch: OpenAISTT,
        language: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._client = make_client(api_key=api_key, base_url=base_url, timeout_s=timeout_s)
        self._model = model
        self._language = language
        self._batch = batch
        self._closed = False

    async def transcribe(self, utterance: Utterance) -> Transcript:
        """The whole utterance, through the batch endpoint (the fallback)."""
        return await self._batch.transcribe(utterance)

    def open_stream(self) -> RealtimeStream | None:
        if self._closed:
            return None
        return RealtimeStream(self._client, self._model, self._language)

    async def warm_up(self) -> None:
        await self._batch.warm_up()
        import websockets.asyncio.client  # noqa: F401 - what the first turn would import

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._batch.close()
            await self._client.close()
