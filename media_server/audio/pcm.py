"""PCM conversion with PyAV: frames or raw s16le bytes -> s16le mono at a fixed rate.

PyAV's ``AudioResampler`` wraps an FFmpeg filter graph that keeps filter state
between calls, so chunk boundaries do not click. It is configured from the
first frame and raises ``ValueError`` if a later frame has another format,
layout or rate; ``FrameConverter`` rebuilds it in that case instead of failing
the stream.
"""

from __future__ import annotations

import logging

import av
import numpy as np

log = logging.getLogger(__name__)


def s16_bytes(frame: av.AudioFrame) -> bytes:
    """The samples of a packed s16 frame as bytes.

    The plane buffer can be longer than the samples (FFmpeg pads lines for
    SIMD: a 320-sample mono frame measured 704 bytes), so slice it.
    """
    plane = frame.planes[0]
    return bytes(plane)[: frame.samples * 2 * frame.layout.nb_channels]


class FrameConverter:
    """Any ``av.AudioFrame`` -> s16le mono bytes at ``rate``. One per stream."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler = self._new()

    def _new(self) -> av.AudioResampler:
        return av.AudioResampler(format="s16", layout="mono", rate=self.rate)

    def convert(self, frame: av.AudioFrame) -> bytes:
        try:
            out = self._resampler.resample(frame)
        except ValueError:
            # The stream changed format/layout/rate mid-way. Drain what the old
            # graph holds and start a new one from this frame.
            log.info(
                "audio format changed to %s/%s/%d Hz; rebuilding resampler",
                frame.format.name,
                frame.layout.name,
                frame.sample_rate,
            )
            tail = self.flush()
            return tail + b"".join(s16_bytes(f) for f in self._resampler.resample(frame))
        return b"".join(s16_bytes(f) for f in out)

    def flush(self) -> bytes:
        """Drain the resampler's delay line; the converter stays usable."""
        try:
            out = b"".join(s16_bytes(f) for f in self._resampler.resample(None))
        except (ValueError, av.FFmpegError):
            out = b""
        self._resampler = self._new()
        return out


class PcmResampler:
    """Incremental s16le PCM -> s16le mono ``out_rate``.

    For espeak-ng (22,050 Hz mono) and OpenAI speech (24 kHz mono) on their way
    to the 48 kHz outbound track. Feed any byte lengths: a partial sample is
    carried to the next call.
    """

    def __init__(self, in_rate: int, in_channels: int = 1, out_rate: int = 48000) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        if in_channels not in (1, 2):
            raise ValueError(f"in_channels must be 1 or 2, got {in_channels}")
        self.in_rate = in_rate
        self.in_channels = in_channels
        self.out_rate = out_rate
        self._layout = "mono" if in_channels == 1 else "stereo"
        self._sample_bytes = 2 * in_channels
        self._passthrough = in_rate == out_rate and in_channels == 1
        self._converter = FrameConverter(out_rate)
        self._remainder = b""

    def convert(self, pcm: bytes) -> bytes:
        data = self._remainder + pcm if self._remainder else pcm
        whole = len(data) - len(data) % self._sample_bytes
        self._remainder = data[whole:]
        if whole == 0:
            return b""
        if self._passthrough:
            return data[:whole]
        samples = np.frombuffer(data, dtype="<i2", count=whole // 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=self._layout)
        frame.sample_rate = self.in_rate
        return self._converter.convert(frame)

    def flush(self) -> bytes:
        """End of stream: the resampler's buffered tail. A dangling half sample is dropped."""
        self._remainder = b""
        if self._passthrough:
            return b""
        return self._converter.flush()
