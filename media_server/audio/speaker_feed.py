"""Provider audio chunks (MP3 or PCM at any rate) into the speaker's PCM."""

from __future__ import annotations

from media_server.audio.mp3 import Mp3Decoder
from media_server.audio.outbound import AgentAudioTrack
from media_server.audio.pcm import PcmResampler
from media_server.types import AudioChunk

SPEAKER_RATE = AgentAudioTrack.SAMPLE_RATE


class SpeakerFeed:
    """One per synthesized piece: turns its chunks into 48 kHz mono s16le."""

    def __init__(self) -> None:
        self._mp3: Mp3Decoder | None = None
        self._pcm: PcmResampler | None = None

    def convert(self, chunk: AudioChunk) -> bytes:
        if chunk.encoding == "mp3":
            if self._mp3 is None:
                self._mp3 = Mp3Decoder(out_rate=SPEAKER_RATE)
            return self._mp3.feed(chunk.data)
        if self._pcm is None:
            self._pcm = PcmResampler(chunk.sample_rate, chunk.channels, SPEAKER_RATE)
        return self._pcm.convert(chunk.data)

    def flush(self) -> bytes:
        out = b""
        if self._mp3 is not None:
            out += self._mp3.flush()
        if self._pcm is not None:
            out += self._pcm.flush()
        return out
