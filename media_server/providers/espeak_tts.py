"""Embedded text-to-speech: espeak-ng through ``espeakng_loader`` and ctypes.

The library and its voice data ship in the ``espeakng-loader`` wheel, so this
needs no system package, no subprocess and no network.

espeak-ng keeps process-global state and is not re-entrant, so the whole
process has ONE engine (``_ENGINE``) driven from one dedicated thread, and a
lock makes sure two calls can never overlap even while a retired thread
finishes its last job. We initialise it in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode:
the wheel's library is built with its own async thread, and in
``AUDIO_OUTPUT_RETRIEVAL`` mode synthesis (and our callback) would run on
that thread instead of ours. In synchronous mode ``espeak_Synth`` blocks in
the caller and calls the callback there, which is what we want.

Synthesis is fast (measured ~15 ms for 7 s of speech, several hundred times
real time), so text is synthesized a sentence at a time: the engine thread is
free for other sessions between sentences, an abandoned stream costs at most
one sentence, and the audio buffered for a slow consumer is bounded by one
sentence rather than the whole text.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import espeakng_loader

from media_server.types import AudioChunk, ProviderError

from .base import TTSCapabilities
from .sentences import split_sentences

log = logging.getLogger(__name__)

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a failed init calls exit(1) in the library
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # keep the sentence-final pause, so consecutive sentences don't run together
_PARAM_RATE = 1
_EE_OK = 0

DEFAULT_VOICE = "en-us"
# The rate espeak-ng synthesizes at (its fixed native rate; espeak_Initialize
# reports it). Chunks carry the rate the library actually reported.
SAMPLE_RATE = 22050
DEFAULT_RATE_WPM = 165  # a little under espeak's 175 default: clearer after Opus and small speakers
# Callback buffer length in ms: ~100 ms pieces keep the loop wake-ups low and still stream.
_BUFFER_MS = 100
_SYNC_TIMEOUT_S = 30.0  # deadline for the blocking helper

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(eq=False)
class _Job:
    """One synthesis: where its PCM goes and whether its owner still wants it."""

    sink: Callable[[bytes], None]
    # Set from the event loop when the consumer goes away; the callback then
    # returns 1, which makes espeak_Synth stop at its next buffer.
    cancelled: threading.Event = field(default_factory=threading.Event)


class _Engine:
    """The process's one espeak-ng instance and the executor that drives it."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self.sample_rate = 0
        # Held for every library call: one caller at a time, whichever thread it is on.
        self._synth_lock = threading.Lock()
        # Guards the executor and its user count.
        self._users_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._users = 0
        self._job: _Job | None = None
        self._voice: str | None = None  # voice currently loaded in the library
        self._unknown_voices: set[str] = set()
        # Keep a reference: ctypes frees the trampoline when the object dies.
        self._callback = _SynthCallback(self._on_audio)
        self.samples_produced = 0  # total PCM samples delivered; tests watch it

    # ---- executor ownership ---------------------------------------------

    def acquire(self) -> ThreadPoolExecutor:
        """A user starts: returns the engine executor (created on demand)."""
        with self._users_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="espeak")
            self._users += 1
            return self._executor

    def release(self) -> ThreadPoolExecutor | None:
        """A user leaves; returns the executor for the caller to shut down if it was the last."""
        with self._users_lock:
            self._users -= 1
            if self._users > 0:
                return None
            executor, self._executor = self._executor, None
            return executor

    # ---- engine thread only -----------------------------------------------

    def _load(self) -> ctypes.CDLL:
        if self._lib is not None:
            return self._lib
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:
            raise ProviderError("tts", "unavailable", f"espeak-ng library: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path, _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise ProviderError("tts", "unavailable", f"espeak-ng failed to initialise ({rate})")
        if rate != SAMPLE_RATE:  # the chunks stay right; only the capabilities are off
            log.warning("espeak-ng reports %d Hz, capabilities say %d Hz", rate, SAMPLE_RATE)
        lib.espeak_SetSynthCallback(self._callback)
        self._lib, self.sample_rate = lib, rate
        return lib

    def _on_audio(self, wav: Any, numsamples: int, _events: int | None) -> int:
        # Runs inside espeak_Synth on the engine thread. An exception must not
        # escape into C (ctypes would print it and return 0), so abort instead.
        job = self._job
        try:
            if job is None or job.cancelled.is_set():
                return 1
            if numsamples > 0 and wav:
                job.sink(ctypes.string_at(wav, numsamples * 2))
                self.samples_produced += numsamples
            return 0
        except RuntimeError:  # the consumer's event loop is closed: nobody is listening
            return 1
        except Exception:
            log.exception("espeak: audio callback failed; aborting this synthesis")
            return 1

    def _select_voice(self, lib: ctypes.CDLL, voice: str) -> None:
        voice = voice.strip() or DEFAULT_VOICE
        if voice == self._voice:
            return
        try:
            ok = lib.espeak_SetVoiceByName(voice.encode("ascii")) == _EE_OK
        except UnicodeEncodeError:
            ok = False
        if not ok:
            if voice not in self._unknown_voices:  # warn once per name, not per sentence
                self._unknown_voices.add(voice)
                log.warning("espeak: unknown voice %r, using %r", voice, DEFAULT_VOICE)
            lib.espeak_SetVoiceByName(DEFAULT_VOICE.encode())
        # A voice change can reset the speaking rate, so set it every time.
        lib.espeak_SetParameter(_PARAM_RATE, DEFAULT_RATE_WPM, 0)
        self._voice = voice

    def run(self, job: _Job, text: str, voice: str) -> None:
        """Synthesizes ``text`` into ``job.sink``; blocks until done or cancelled."""
        data = text.replace("\0", " ").encode("utf-8") + b"\0"
        with self._synth_lock:
            if job.cancelled.is_set():
                return
            lib = self._load()
            self._select_voice(lib, voice)
            self._job = job
            try:
                err = lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
                )
            finally:
                self._job = None
        if err != _EE_OK and not job.cancelled.is_set():
            raise ProviderError("tts", "bad_output", f"espeak_Synth failed ({err})")

    def load(self) -> int:
        with self._synth_lock:
            self._load()
            return self.sample_rate


_ENGINE = _Engine()


def _noop() -> None:
    pass


def _finish(queue: asyncio.Queue[bytes | None], done: asyncio.Future[None]) -> None:
    # Mark the exception retrieved: an abandoned stream never awaits ``done``,
    # and asyncio would log "exception was never retrieved" for it.
    if not done.cancelled():
        done.exception()
    queue.put_nowait(None)


async def _retire(executor: ThreadPoolExecutor) -> None:
    """Lets the engine thread finish its queue without blocking the loop, then joins it."""
    await asyncio.wrap_future(executor.submit(_noop))
    executor.shutdown(wait=True)  # the worker is idle now: this only joins it


class EspeakTTS:
    """TextToSpeech on espeak-ng; all instances share the one process engine."""

    name = "espeak"
    # Sentence by sentence, in ~100 ms pieces as the engine makes them.
    capabilities = TTSCapabilities(streaming=True, encoding="pcm", sample_rate=SAMPLE_RATE)

    def __init__(self) -> None:
        # Hold the engine (and start its thread) now: the thread lives as long as
        # a provider does (leak checks snapshot threads after building providers).
        # The library itself loads on first use or in warm_up().
        self._executor: ThreadPoolExecutor | None = _ENGINE.acquire()
        self._executor.submit(_noop)
        self._closed = False

    def _engine_executor(self) -> ThreadPoolExecutor:
        if self._closed or self._executor is None:
            raise ProviderError("tts", "unavailable", "espeak: provider is closed")
        return self._executor

    async def warm_up(self) -> None:
        """Loads the library and voice data now rather than on the first reply."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._engine_executor(), _ENGINE.load)

    async def synthesize(self, text: str, voice: str = DEFAULT_VOICE) -> AsyncIterator[AudioChunk]:
        pieces = split_sentences(text)
        if not pieces:
            return
        executor = self._engine_executor()
        loop = asyncio.get_running_loop()
        for piece in pieces:
            if self._closed:  # closed between sentences: the executor may be gone
                raise ProviderError("tts", "unavailable", "espeak: provider closed mid-reply")
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()

            def sink(pcm: bytes, queue: asyncio.Queue[bytes | None] = queue) -> None:
                # Engine thread -> loop. Raises RuntimeError once the loop is
                # closed, which the callback turns into an abort.
                loop.call_soon_threadsafe(queue.put_nowait, pcm)

            job = _Job(sink=sink)
            done = loop.run_in_executor(executor, _ENGINE.run, job, piece, voice)
            # The end marker follows every sink call: done callbacks reach the
            # loop after the audio the engine thread posted before finishing.
            done.add_done_callback(functools.partial(_finish, queue))
            try:
                while (pcm := await queue.get()) is not None:
                    yield AudioChunk(pcm, "pcm", _ENGINE.sample_rate, 1)
                await done  # re-raises the engine's error, if any
            except ProviderError:
                raise
            except Exception as exc:
                raise ProviderError("tts", "bad_output", f"espeak: {exc!r}") from exc
            finally:
                # Abandoned, cancelled or finished: either way stop this job now.
                job.cancelled.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor = None
        retired = _ENGINE.release()
        if retired is not None:
            await _retire(retired)


def synthesize_to_pcm(text: str, voice: str = DEFAULT_VOICE) -> tuple[bytes, int]:
    """Blocking: all of ``text`` as s16le mono PCM, and its sample rate.

    Goes through the same engine thread and lock as ``EspeakTTS``, so it is
    safe alongside the async path. For tests, benchmarks and fixtures; never
    call it on the event loop of a live server.
    """
    parts: list[bytes] = []
    executor = _ENGINE.acquire()
    try:
        rate = executor.submit(_ENGINE.load).result(_SYNC_TIMEOUT_S)
        for piece in split_sentences(text):
            executor.submit(_ENGINE.run, _Job(sink=parts.append), piece, voice).result(
                _SYNC_TIMEOUT_S
            )
    finally:
        retired = _ENGINE.release()
        if retired is not None:
            retired.shutdown(wait=True)
    return b"".join(parts), rate
