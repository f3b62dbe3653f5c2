"""G.711 μ-law against the standard codec: bit-exact with audioop, and the
table values G.711 fixes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from media_server.telephony import mulaw

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")  # gone in 3.13; the table checks below stay

ALL_S16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_BYTES = bytes(range(256))


def test_encode_is_bit_exact_with_the_standard_codec_for_every_sample() -> None:
    assert mulaw.encode(ALL_S16) == audioop.lin2ulaw(ALL_S16, 2)


def test_decode_is_bit_exact_with_the_standard_codec_for_every_byte() -> None:
    assert mulaw.decode(ALL_BYTES) == audioop.ulaw2lin(ALL_BYTES, 2)


def test_g711_table_values() -> None:
    # Zero is 0xFF, full scale +/-32124 are 0x80 / 0x00, and both zeros decode to 0.
    assert mulaw.encode(np.array([0, 32767, -32768], dtype="<i2").tobytes()) == b"\xff\x80\x00"
    decoded = np.frombuffer(mulaw.decode(b"\x00\x80\xff\x7f"), dtype="<i2").tolist()
    assert decoded == [-32124, 32124, 0, 0]


def test_a_tone_survives_the_round_trip() -> None:
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    back = np.frombuffer(mulaw.decode(mulaw.encode(tone.tobytes())), dtype="<i2")
    error = np.abs(back.astype(np.int32) - tone.astype(np.int32))
    assert error.max() <= 8000 * 0.04  # μ-law's step is ~3 % of the level
