"""Mp3Decoder (incremental MP3 -> 48 kHz PCM) and PcmResampler."""

from __future__ import annotations

import numpy as np
import pytest

from media_server.audio.mp3 import Mp3DecodeError, Mp3Decoder, PcmResampler
from tests.audio_fixtures import chunks, dominant_frequency, encode_mp3, rms_dbfs, sine

OUT = 48000


def decode(data: bytes, chunk: int) -> tuple[Mp3Decoder, list[bytes], bytes]:
    dec = Mp3Decoder()
    parts = [dec.feed(c) for c in chunks(data, chunk)]
    return dec, parts, dec.flush()


@pytest.fixture(scope="module")
def tone_mp3() -> bytes:
    return encode_mp3(sine(1.0, 440, rate=44100, amplitude=0.5), rate=44100)


@pytest.mark.parametrize("chunk", [3, 100, 1000, 100_000])
def test_decodes_a_tone_in_chunks(tone_mp3: bytes, chunk: int) -> None:
    assert tone_mp3[:3] == b"ID3"  # the tag is split across the 3-byte chunks
    dec, parts, tail = decode(tone_mp3, chunk)
    pcm = b"".join(parts) + tail
    seconds = len(pcm) / 2 / OUT
    # MP3 adds encoder delay and pads the last frame: a little longer, never shorter.
    assert 1.0 <= seconds <= 1.1
    assert dominant_frequency(pcm, OUT) == pytest.approx(440, abs=3)
    assert rms_dbfs(pcm[9600:-9600]) == pytest.approx(
        rms_dbfs(sine(1.0, 440, amplitude=0.5)), abs=1
    )
    assert dec.errors == 0  # the ID3 tag was skipped, not fed to the decoder
    assert dec.samples_out == len(pcm) // 2


def test_audio_comes_out_while_the_stream_arrives(tone_mp3: bytes) -> None:
    _, parts, tail = decode(tone_mp3, 500)
    decoded_early = sum(len(p) for p in parts[: len(parts) // 2])
    # Half the bytes in -> roughly half the audio out, before the stream ends.
    assert decoded_early / 2 / OUT > 0.4
    assert len(tail) / 2 / OUT < 0.06


def test_other_input_rate_is_resampled_to_48k() -> None:
    data = encode_mp3(sine(2.0, 1000, rate=24000), rate=24000, bitrate=32000)
    _, parts, tail = decode(data, 777)
    pcm = b"".join(parts) + tail
    assert 2.0 <= len(pcm) / 2 / OUT <= 2.1
    assert dominant_frequency(pcm, OUT) == pytest.approx(1000, abs=3)


def test_truncated_stream_is_tolerated(tone_mp3: bytes) -> None:
    cut = tone_mp3[: len(tone_mp3) // 2 + 37]  # ends inside a frame
    _, parts, tail = decode(cut, 256)
    seconds = (sum(len(p) for p in parts) + len(tail)) / 2 / OUT
    assert 0.4 <= seconds <= 0.6


def test_corruption_in_the_middle_skips_frames_only(tone_mp3: bytes) -> None:
    mid = len(tone_mp3) // 2
    damaged = tone_mp3[:mid] + bytes(300) + tone_mp3[mid + 300 :]
    _, parts, tail = decode(damaged, 512)
    seconds = (sum(len(p) for p in parts) + len(tail)) / 2 / OUT
    assert 0.8 <= seconds <= 1.1


@pytest.mark.parametrize(
    "garbage",
    [
        b'{"detail":{"status":"quota_exceeded","message":"You exceeded your quota"}}' * 40,
        bytes(5000),
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"ID3",
    ],
)
def test_no_audio_at_all_raises_on_flush(garbage: bytes) -> None:
    dec = Mp3Decoder()
    for c in chunks(garbage, 100):
        assert dec.feed(c) == b""
    with pytest.raises(Mp3DecodeError) as err:
        dec.flush()
    assert isinstance(err.value, ValueError)
    assert dec.flush() == b""  # a second flush is harmless


def test_feed_after_flush_is_a_bug(tone_mp3: bytes) -> None:
    dec = Mp3Decoder()
    dec.feed(tone_mp3)
    dec.flush()
    with pytest.raises(RuntimeError):
        dec.feed(tone_mp3)


# -- PcmResampler --------------------------------------------------------------


@pytest.mark.parametrize("in_rate", [22050, 24000, 16000])
def test_pcm_resampler_rate_and_frequency(in_rate: int) -> None:
    src = sine(1.0, 440, rate=in_rate, amplitude=0.5)
    res = PcmResampler(in_rate)
    pcm = b"".join(res.convert(c) for c in chunks(src, 1001)) + res.flush()  # odd: half samples
    assert abs(len(pcm) // 2 - OUT) <= 50
    assert dominant_frequency(pcm, OUT) == pytest.approx(440, abs=2)


def test_pcm_resampler_chunking_does_not_click() -> None:
    src = sine(1.0, 440, rate=22050, amplitude=0.5)
    whole = PcmResampler(22050)
    one_shot = whole.convert(src) + whole.flush()
    res = PcmResampler(22050)
    pieces = b"".join(res.convert(c) for c in chunks(src, 441)) + res.flush()
    x = np.frombuffer(pieces, dtype="<i2").astype(np.int32)
    y = np.frombuffer(one_shot, dtype="<i2").astype(np.int32)
    assert len(x) == len(y)
    assert np.max(np.abs(x - y)) <= 1  # same stream, whatever the chunking
    # Largest step of a 440 Hz sine at 0.5 FS and 48 kHz is ~943; a click is far more.
    assert np.max(np.abs(np.diff(x[100:-100]))) < 1100


def test_pcm_resampler_stereo_input() -> None:
    mono = sine(0.5, 300, rate=24000, amplitude=0.5)
    stereo = np.repeat(np.frombuffer(mono, dtype="<i2"), 2).tobytes()
    res = PcmResampler(24000, in_channels=2)
    pcm = b"".join(res.convert(c) for c in chunks(stereo, 999)) + res.flush()
    assert abs(len(pcm) // 2 - OUT // 2) <= 50
    assert dominant_frequency(pcm, OUT) == pytest.approx(300, abs=3)


def test_pcm_resampler_passthrough_at_48k() -> None:
    src = sine(0.1, 440, rate=OUT)
    res = PcmResampler(OUT)
    assert res.convert(src[:101]) + res.convert(src[101:]) + res.flush() == src


def test_pcm_resampler_usable_after_flush() -> None:
    res = PcmResampler(22050)
    first = res.convert(sine(0.2, 440, rate=22050)) + res.flush()
    second = res.convert(sine(0.2, 440, rate=22050)) + res.flush()
    assert abs(len(first) - len(second)) <= 4
    assert len(second) // 2 == pytest.approx(0.2 * OUT, abs=20)


def test_pcm_resampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        PcmResampler(0)
    with pytest.raises(ValueError):
        PcmResampler(22050, in_channels=6)
