"""The agent's voice encoded to Opus in its own track, not in aiortc's thread pool.

aiortc's RTP sender encodes every audio frame a track returns in the default
thread pool (``run_in_executor(None, encoder.encode, ...)``) with one fixed
encoder: stereo, 96 kbit/s, ``voip`` application. For a voice agent, whose
every session sends a continuous stream that is mostly silence, that costs per
20 ms frame (PyAV 18, libopus, measured alone): ~350 µs for speech and
~166 µs for digital silence, plus a hop to a pool thread and back through the
event loop, and the pool's threads contend with the loop for the GIL. Under
load the clients' late frames came from there (bench/capacity, ``sent_late``).

A track may instead return encoded ``av.Packet`` objects: the sender then only
packetizes them (no executor, no audio-level pass). ``SpeechOpusEncoder``
makes those packets, on the caller's thread, with settings for one voice:

- mono: the agent's voice is mono (the SDP's ``opus/48000/2`` allows mono
  packets; every decoder outputs what its caller asked for);
- CELT only (``application=lowdelay``): 2.5 ms of codec delay instead of
  6.5, and no SILK/hybrid analysis; at 64 kbit/s and complexity 5 speech
  decodes back at ~26 dB waveform SNR, and costs ~100 µs per frame;
- silence is not encoded at all once the codec has gone quiet: digital
  silence encodes to the same 3-byte packet every frame, so once the codec has
  returned that packet for ``QUIET_FRAMES`` silent frames in a row, it is sent
  again without calling the codec. Until then every frame is encoded: after a
  word cut off mid-way (barge-in) the codec spends ~300 ms letting the energy
  fall, and those packets carry it. The decoder sees only packets, so it
  cannot tell; what differs is encoder-only state (its bit reservoir), which
  shapes, not breaks, the next words.
"""

from __future__ import annotations

import fractions

import av
from aiortc.sdp import SessionDescription

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
BIT_RATE = 64000
COMPLEXITY = 5
# Silent frames that must have come out as the silence packet before it is reused.
QUIET_FRAMES = 3
# A fresh codec goes quiet within a few frames; this bounds the start-up loop.
_MAX_PRIME_FRAMES = 50
_SILENCE = bytes(FRAME_SAMPLES * 2)


class SpeechOpusEncoder:
    """20 ms frames of s16le mono 48 kHz PCM -> one Opus packet each."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.bit_rate = BIT_RATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        codec.time_base = TIME_BASE
        codec.options = {"application": "lowdelay", "compression_level": str(COMPLEXITY)}
        self._codec = codec
        self._quiet_run = 0  # silent frames in a row that came out as the silence packet
        # Counters (tests, metrics).
        self.frames_encoded = 0
        self.silence_reused = 0
        # Know the silence packet from the start (a fallback that never needs
        # the codec), and start as after a long silence.
        self._silence_packet = b""
        for _ in range(_MAX_PRIME_FRAMES):
            data = self._encode(_SILENCE, 0)
            self._quiet_run = self._quiet_run + 1 if data == self._silence_packet else 0
            self._silence_packet = data
            if self._quiet_run >= QUIET_FRAMES:
                break

    def encode(self, pcm: bytes, pts: int, *, silent: bool = False) -> av.Packet:
        """One packet for one frame (``FRAME_SAMPLES`` samples) at ``pts``
        (1/48000 s). ``silent``: the caller knows ``pcm`` is digital silence."""
        if not silent:
            self._quiet_run = 0
        elif self._quiet_run >= QUIET_FRAMES:
            return self.silence(pts)
        data = self._encode(pcm, pts)
        if silent:
            self._quiet_run = self._quiet_run + 1 if data == self._silence_packet else 0
        return self._packet(data, pts)

    def silence(self, pts: int) -> av.Packet:
        """The packet for a silent frame, without touching the codec."""
        self.silence_reused += 1
        return self._packet(self._silence_packet, pts)

    def _encode(self, pcm: bytes, pts: int) -> bytes:
        if len(pcm) != FRAME_SAMPLES * 2:
            raise ValueError(f"expected {FRAME_SAMPLES * 2} bytes of PCM, got {len(pcm)}")
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = TIME_BASE
        frame.pts = pts
        packets = self._codec.encode(frame)
        self.frames_encoded += 1
        # libopus takes whole 20 ms frames and returns a packet for each at once.
        if len(packets) != 1:
            raise RuntimeError(f"libopus returned {len(packets)} packets for one frame")
        return bytes(packets[0])

    @staticmethod
    def _packet(data: bytes, pts: int) -> av.Packet:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet


def sends_opus(answer_sdp: str, mid: str | None) -> bool:
    """Whether the answer's media section ``mid`` sends Opus.

    aiortc's sender uses the first codec of the negotiated list, which is the
    first payload type the answer lists for the section.
    """
    if mid is None:
        return False
    for media in SessionDescription.parse(answer_sdp).media:
        if media.kind == "audio" and media.rtp.muxId == mid and media.rtp.codecs:
            return media.rtp.codecs[0].mimeType.lower() == "audio/opus"
    return False
