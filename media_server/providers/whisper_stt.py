"""Embedded speech-to-text: Whisper tiny.en (numpy or CTranslate2), off the event loop.

Chosen by ``bench.offline_asr`` over pocketsphinx: on espeak-ng speech it
makes about a third of the word errors and the scripted agents understand
most turns it hears (README, "Offline speech recognition"). It transcribes a
whole turn at once (no streaming decode); at the pauses of a turn the
end-of-turn policy gets speculative transcripts like a cloud engine's.

CPU: the encoder reads a fixed window whatever the utterance's length;
``WINDOW_S`` = 10 s (or the utterance plus 1 s, if longer) costs a quarter of
Whisper's 30 s for the same words on the bench. The numpy backend (default)
takes about twice the CPU of CTranslate2's int8 (``WHISPER_BACKEND``), both
less than pocketsphinx (README, "Offline speech recognition").

Bounds: ``workers`` threads decode at once (``WHISPER_WORKERS``), each on one
core; at most ``max_waiting`` more turns wait for one. Past that a turn is
refused at once with a retryable ``unavailable`` error, so with ``auto`` the
fallback chain hands it to pocketsphinx instead of letting a queue grow.
The model (~75 MB, ~0.5 s to load) is loaded once per process, off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from media_server.providers.engine_pool import run_in_engine_pool
from media_server.types import ProviderError, Transcript, Utterance

from .base import STTCapabilities

log = logging.getLogger(__name__)

MODEL_RATE = 16000
WINDOW_S = 10.0
# Hypotheses of the beam search (OpenAI's default, 5): on the bench's clean
# speech 16.4 % WER and 91.7 % of the held-out turns understood, against
# greedy's 20.6 % and 87.5 %, for ~15 % more CPU per turn (the 5 rows share
# each read of the weights).
BEAM = 5
# Below this peak level the input is treated as silence (-60 dBFS): Whisper
# would invent words for it.
_SILENCE_PEAK = 32767 * 10 ** (-60 / 20)


def _to_model_rate(pcm: bytes, rate: int) -> np.ndarray:
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768
    if rate != MODEL_RATE and samples.size:
        n = round(samples.size * MODEL_RATE / rate)
        samples = np.interp(np.arange(n) * (rate / MODEL_RATE), np.arange(samples.size), samples)
    return samples.astype(np.float32)


class WhisperSTT:
    """SpeechToText on Whisper tiny.en; one model, ``workers`` decoding threads."""

    name = "whisper"
    capabilities = STTCapabilities(streaming=False)

    def __init__(
        self, *, workers: int = 1, max_waiting: int | None = None, backend: str = "numpy"
    ) -> None:
        if backend == "ctranslate2":  # fail at start-up, not on the first turn
            try:
                import ctranslate2  # noqa: F401
            except ImportError as exc:
                raise ProviderError(
                    "stt",
                    "invalid",
                    "WHISPER_BACKEND=ctranslate2 needs the ctranslate2 package "
                    "(uv sync --extra ctranslate2, or pip install 'voice-agent[ctranslate2]')",
                ) from exc
        self._backend = backend
        self._workers = workers
        self._max_waiting = 4 * workers if max_waiting is None else max_waiting
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="whisper")
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._admitted = 0  # turns decoding or waiting; event loop only
        self._closed = False
        self.refused = 0  # turns refused because every worker and waiting place was taken

    # ---- worker threads ----------------------------------------------------

    def _ensure_model(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from media_server.providers.whisper_model import WhisperModel

                self._model = WhisperModel(
                    workers=self._workers,
                    window_s=WINDOW_S,
                    backend=self._backend,
                    domain_prompt=True,  # +7 points of turns understood on the bench
                    beam=BEAM,
                )
            return self._model

    def _decode(self, pcm: bytes, rate: int, abandoned: threading.Event) -> str:
        if self._closed or abandoned.is_set():  # queued behind close() or given up
            return ""
        samples = _to_model_rate(pcm, rate)
        if samples.size == 0 or float(np.max(np.abs(samples))) * 32768 < _SILENCE_PEAK:
            return ""
        return self._ensure_model().transcribe(samples)

    # ---- event loop --------------------------------------------------------

    def open_stream(self) -> None:
        return None  # whole turns only; see the module doc

    async def warm_up(self) -> None:
        """Loads the model now instead of on the first turn."""
        await self._run(self._ensure_model)

    async def transcribe(self, utterance: Utterance) -> Transcript:
        if utterance.sample_rate <= 0:
            raise ProviderError("stt", "invalid", f"bad sample rate {utterance.sample_rate}")
        if self._admitted >= self._workers + self._max_waiting:
            self.refused += 1
            raise ProviderError("stt", "unavailable", "whisper: every worker is busy")
        abandoned = threading.Event()
        self._admitted += 1
        try:
            text = await self._run(self._decode, utterance.pcm, utterance.sample_rate, abandoned)
        finally:
            self._admitted -= 1
            abandoned.set()  # cancelled while queued or decoding: drop the work
        return Transcript(text=text, language="en")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await run_in_engine_pool(
            self._executor, fn, *args, stage="stt", name="whisper", closed=self._closed
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Queued turns return at once; a decode in progress ends by itself
        # (under a second). Wait for that without blocking the loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        self._model = None
