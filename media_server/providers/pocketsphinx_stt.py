"""Embedded speech-to-text: CMU PocketSphinx 5 with the en-US model from its wheel.

Measured on the dev machine (2 cores, pocketsphinx 5.1.1):

* creating a ``Decoder`` takes 0.5-0.8 s, so there is one, created lazily
  (or by ``warm_up()`` at server start) and reused for every utterance;
* ``process_raw`` holds the GIL for its whole call: one call with a 3 s
  utterance starved the event loop for ~150 ms at a time. Audio is fed in
  20 ms slices instead, so the loop gets the GIL back between slices; the
  loop's wake-up lag grows with the slice (median ~10/20/25/55 ms for
  10/20/40/80 ms slices on a busy machine). Slicing also decoded faster
  (~0.35x real time on an idle machine against ~0.6x for one full-utterance
  call) and recognised espeak speech better;
* the second "fwdflat" search pass runs inside ``end_utt`` and holds the GIL
  for ~200 ms in one go, so it is off by default (``second_pass=True``
  brings it back for a little accuracy at that cost);
* fed as one full utterance, digital silence came back as "i'm"; near-silent
  input (peak below -60 dBFS) is answered with "" without waking the decoder.

The decoder is not thread-safe, so every call runs on one dedicated thread;
concurrent sessions queue behind each other.

Streaming: ``open_stream()`` hands out a decoder of a small pool (each with
its own thread) that decodes a turn *while it is spoken*, fed by the
segmenter frame by frame. At the end of the turn only the last few frames
and ``end_utt`` remain, so the transcript is ready in tens of milliseconds
instead of ~0.35x the utterance's length. When every pooled decoder is busy
(more people talking at once than ``max_streams``) it returns None and the
turn falls back to ``transcribe()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from pocketsphinx import Config, Decoder

from media_server.providers.engine_pool import run_in_engine_pool
from media_server.types import ProviderError, Transcript, Utterance

from .base import STTCapabilities

log = logging.getLogger(__name__)

MODEL_RATE = 16000
_SLICE_SAMPLES = 320  # 20 ms of 16 kHz audio per process_raw call (see module doc)
# Below this peak level the input is treated as silence (-60 dBFS).
_SILENCE_PEAK = int(32767 * 10 ** (-60 / 20))
# Filler and noise tokens ("<sil>", "[noise]", "(2)" alternates) are not words.
_TOKEN_RE = re.compile(r"<[^>]*>|\[[^\]]*\]|\(\d+\)")


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Linear resampling to the model rate; adequate for an 8 kHz-band recogniser."""
    n = round(len(samples) * MODEL_RATE / rate)
    positions = np.arange(n) * (rate / MODEL_RATE)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.int16)


def _noop() -> None:
    pass


def _clean(hypothesis: str) -> str:
    return " ".join(_TOKEN_RE.sub(" ", hypothesis).split())


class _DecoderSlot:
    """A decoder and the one thread allowed to touch it."""

    def __init__(self, second_pass: bool) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="pocketsphinx-stream")
        self.executor.submit(_noop)  # the thread lives as long as the slot
        self._second_pass = second_pass
        self.decoder: Any = None

    def ensure_decoder(self) -> Any:  # slot thread only
        if self.decoder is None:
            self.decoder = Decoder(Config(loglevel="FATAL", fwdflat=self._second_pass))
        return self.decoder

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class PocketsphinxStream:
    """One utterance decoded frame by frame on a pooled decoder."""

    def __init__(self, owner: PocketsphinxSTT, slot: _DecoderSlot) -> None:
        self._owner = owner
        self._slot = slot
        self._peak = 0
        self._ended = False
        self._abandoned = threading.Event()
        self._started: Future[Any] = slot.executor.submit(self._start)

    # ---- slot thread -----------------------------------------------------

    def _start(self) -> None:
        self._slot.ensure_decoder().start_utt()

    def _process(self, pcm: bytes) -> None:
        if self._abandoned.is_set() or not self._started.done() or self._started.exception():
            return
        decoder = self._slot.decoder
        step = _SLICE_SAMPLES * 2
        for start in range(0, len(pcm), step):
            decoder.process_raw(pcm[start : start + step], False, False)
        self._owner.samples_decoded += len(pcm) // 2

    def _end(self) -> str:
        self._started.result()  # re-raises a failed decoder load
        decoder = self._slot.decoder
        decoder.end_utt()
        hyp = decoder.hyp()
        return _clean(hyp.hypstr) if hyp is not None else ""

    def _partial(self) -> str:
        if self._abandoned.is_set() or not self._started.done() or self._started.exception():
            return ""
        hyp = self._slot.decoder.hyp()
        return _clean(hyp.hypstr) if hyp is not None else ""

    def _abort(self) -> None:
        if self._started.done() and not self._started.exception():
            with contextlib.suppress(Exception):
                self._slot.decoder.end_utt()

    # ---- event loop ------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if self._ended or not pcm:
            return
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        if samples.size:
            self._peak = max(self._peak, int(np.max(np.abs(samples.astype(np.int32)))))
        self._slot.executor.submit(self._process, pcm)

    async def interim(self) -> Transcript:
        """The best hypothesis so far; it queues behind the audio fed before."""
        if self._ended:
            raise ProviderError("stt", "bad_output", "pocketsphinx: stream already ended")
        text = await asyncio.wrap_future(self._slot.executor.submit(self._partial))
        return Transcript(text=text if self._peak >= _SILENCE_PEAK else "", language="en")

    async def finish(self) -> Transcript:
        if self._ended:
            raise ProviderError("stt", "bad_output", "pocketsphinx: stream already ended")
        self._ended = True
        future = self._slot.executor.submit(self._end)
        self._owner._release(self._slot)  # later work queues behind _end on this thread
        try:
            text = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._abandoned.set()
            raise
        except Exception as exc:
            log.warning("pocketsphinx stream failed: %r", exc)
            raise ProviderError("stt", "bad_output", f"pocketsphinx: {exc!r}") from exc
        return Transcript(text=text if self._peak >= _SILENCE_PEAK else "", language="en")

    def cancel(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._abandoned.set()
        self._slot.executor.submit(self._abort)
        self._owner._release(self._slot)


class PocketsphinxSTT:
    """SpeechToText on PocketSphinx; one decoder per instance, one thread to drive it."""

    name = "pocketsphinx"
    # open_stream() may still return None when every pooled decoder is busy.
    capabilities = STTCapabilities(streaming=True)

    def __init__(self, *, second_pass: bool = False, max_streams: int = 2) -> None:
        self._second_pass = second_pass
        # Threads start now (like the batch one below), decoders load lazily or
        # in warm_up(): the provider's threads live exactly as long as it does.
        self._all_slots = [_DecoderSlot(second_pass) for _ in range(max_streams)]
        self._idle_slots = list(self._all_slots)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pocketsphinx")
        # Start the worker now: the thread lives exactly as long as the provider
        # (leak checks snapshot threads after building the providers). The
        # decoder, the expensive part, still loads lazily or in warm_up().
        self._executor.submit(_noop)
        self._decoder: Any = None  # created on the executor thread, used only there
        self._closed = False
        self.decoder_loads = 0  # how many decoders were created; stays 1 in normal use
        self.samples_decoded = 0  # total samples fed to the decoder

    # ---- executor thread only ---------------------------------------------

    def _ensure_decoder(self) -> Any:
        if self._decoder is None:
            # loglevel FATAL: the default (INFO/WARN) prints a few hundred lines
            # of configuration and search statistics to stderr per decoder/utterance.
            config = Config(loglevel="FATAL", fwdflat=self._second_pass)
            self._decoder = Decoder(config)
            self.decoder_loads += 1
        return self._decoder

    def _decode(self, pcm: bytes, rate: int, abandoned: threading.Event) -> str:
        if self._closed:  # queued behind close(): do not start work nobody waits for
            raise ProviderError("stt", "unavailable", "pocketsphinx: provider is closed")
        if abandoned.is_set():
            return ""
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        if samples.size == 0 or int(np.max(np.abs(samples.astype(np.int32)))) < _SILENCE_PEAK:
            return ""
        if rate != MODEL_RATE:
            samples = _resample(samples, rate)
        data = samples.astype("<i2").tobytes()
        decoder = self._ensure_decoder()
        step = _SLICE_SAMPLES * 2
        decoder.start_utt()
        try:
            for start in range(0, len(data), step):
                # Between slices: stop early when the caller gave up (barge-in,
                # timeout) or the server is closing, so the next turn need not wait.
                if abandoned.is_set() or self._closed:
                    return ""
                decoder.process_raw(data[start : start + step], False, False)
                self.samples_decoded += min(step, len(data) - start) // 2
        finally:
            decoder.end_utt()
        hyp = decoder.hyp()
        return _clean(hyp.hypstr) if hyp is not None else ""

    # ---- streaming -----------------------------------------------------------

    def open_stream(self) -> PocketsphinxStream | None:
        """A decoder for a turn that is starting, or None if all are busy."""
        if self._closed:
            return None
        if not self._idle_slots:
            return None
        return PocketsphinxStream(self, self._idle_slots.pop())

    def _release(self, slot: _DecoderSlot) -> None:
        if not self._closed:
            self._idle_slots.append(slot)

    # ---- async API ----------------------------------------------------------

    async def warm_up(self) -> None:
        """Creates the decoders now (about a second each) instead of on the first turns."""
        await self._run(self._ensure_decoder)
        for slot in self._all_slots:
            await asyncio.wrap_future(slot.executor.submit(slot.ensure_decoder))

    async def transcribe(self, utterance: Utterance) -> Transcript:
        if utterance.sample_rate <= 0:
            raise ProviderError("stt", "invalid", f"bad sample rate {utterance.sample_rate}")
        abandoned = threading.Event()
        try:
            text = await self._run(self._decode, utterance.pcm, utterance.sample_rate, abandoned)
        finally:
            abandoned.set()  # cancelled while queued or decoding: drop the work
        if self._closed:
            raise ProviderError("stt", "unavailable", "pocketsphinx: closed while decoding")
        return Transcript(text=text, language="en")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await run_in_engine_pool(
            self._executor, fn, *args, stage="stt", name="pocketsphinx", closed=self._closed
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # A decode in progress stops at its next 20 ms slice and queued ones
        # return at once; wait for that without blocking the loop.
        await asyncio.wrap_future(self._executor.submit(self._drop_decoder))
        self._executor.shutdown(wait=True)  # idle worker: this only joins it
        slots, self._all_slots, self._idle_slots = self._all_slots, [], []
        for slot in slots:
            await asyncio.to_thread(slot.shutdown)

    def _drop_decoder(self) -> None:
        self._decoder = None
