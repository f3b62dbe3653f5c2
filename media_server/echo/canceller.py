"""Acoustic echo cancellers: 10 ms of what was played and of what was heard
in, the heard audio less the echo of the played one out.

``Aec3Canceller``: WebRTC's AEC3 (BSD-3-Clause), run by the audio
processing module in the ``livekit`` wheel (Apache-2.0; its native library
is loaded in-process, no server or network). AEC3 finds the delay between
the two streams itself (within ~0.5 s) and keeps a person who talks over
the echo (double talk). ~0.01 s of CPU per audio-second.
"""

from __future__ import annotations

from typing import Protocol

RATE = 16000
FRAME_SAMPLES = RATE // 100  # 10 ms: the only frame size AEC3 takes
FRAME_BYTES = FRAME_SAMPLES * 2


class Canceller(Protocol):
    def process(self, reference: bytes, near: bytes) -> bytes:
        """10 ms of played (``reference``) and heard (``near``) 16 kHz s16le
        mono; returns ``near`` with the echo of the reference removed."""
        ...


class Aec3Canceller:
    """One per session (it learns that call's echo path)."""

    def __init__(self) -> None:
        from livekit.rtc import AudioFrame, AudioProcessingModule

        self._frame = AudioFrame
        self._apm = AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._apm.set_stream_delay_ms(0)  # the streams are aligned on the server's clock

    def process(self, reference: bytes, near: bytes) -> bytes:
        frame = self._frame
        self._apm.process_reverse_stream(frame(bytearray(reference), RATE, 1, FRAME_SAMPLES))
        heard = frame(bytearray(near), RATE, 1, FRAME_SAMPLES)
        self._apm.process_stream(heard)
        return bytes(heard.data.cast("B"))


def warm_canceller() -> None:
    """Load the native library (~1 s, once per process; call it off the event
    loop): a session's canceller is then made in under a millisecond."""
    Aec3Canceller()
