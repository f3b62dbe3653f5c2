"""SpeechOpusEncoder: what a peer decodes, packet shape, reused silence, SDP check."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from media_server.audio.opus_encoder import (
    FRAME_SAMPLES,
    QUIET_FRAMES,
    SpeechOpusEncoder,
    sends_opus,
)
from tests.conftest import speech_48k

FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE = bytes(FRAME_BYTES)


@pytest.fixture(scope="module")
def speech_frames() -> list[bytes]:
    pcm = speech_48k("Your table for two is booked.")
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def decode(packets: list[bytes]) -> np.ndarray:
    """What a peer hears: aiortc's decoder (stereo out), first channel."""
    decoder = OpusDecoder()
    out = []
    for i, data in enumerate(packets):
        for frame in decoder.decode(JitterFrame(data=data, timestamp=i * FRAME_SAMPLES)):
            samples = np.frombuffer(frame.planes[0], dtype="<i2", count=frame.samples * 2)
            out.append(samples[::2])
    return np.concatenate(out).astype(np.float64)


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Best waveform SNR over the codec's delay (a few ms)."""
    best = -np.inf
    for lag in range(0, 480):
        n = min(len(reference), len(decoded) - lag)
        err = reference[:n] - decoded[lag : lag + n]
        best = max(best, 10 * np.log10(np.sum(reference[:n] ** 2) / max(np.sum(err**2), 1.0)))
    return best


def toc(packet: bytes) -> tuple[int, int]:
    """(configuration, stereo flag) from an Opus packet's first byte (RFC 6716 3.1)."""
    return packet[0] >> 3, (packet[0] >> 2) & 1


def test_speech_decodes_back_to_what_was_said(speech_frames: list[bytes]) -> None:
    encoder = SpeechOpusEncoder()
    packets = [bytes(encoder.encode(f, i * FRAME_SAMPLES)) for i, f in enumerate(speech_frames)]
    reference = np.frombuffer(b"".join(speech_frames), dtype="<i2").astype(np.float64)
    # Waveform-accurate, which only a transform codec at this rate is: the
    # measured value is ~26 dB.
    assert snr_db(reference, decode(packets)) > 18


def test_packets_are_mono_celt_fullband_20ms_with_the_frames_pts(
    speech_frames: list[bytes],
) -> None:
    encoder = SpeechOpusEncoder()
    for i, pcm in enumerate(speech_frames[:20]):
        packet = encoder.encode(pcm, 5000 + i * FRAME_SAMPLES)
        assert packet.pts == 5000 + i * FRAME_SAMPLES
        assert packet.time_base == fractions.Fraction(1, 48000)
        # Configuration 31: CELT-only, fullband, 20 ms. Stereo flag clear.
        assert toc(bytes(packet)) == (31, 0)
        assert 60 < packet.size < 400  # ~64 kbit/s, not 96 kbit/s of stereo


def test_silence_after_speech_stops_calling_the_codec_with_identical_packets(
    speech_frames: list[bytes],
) -> None:
    sequence = speech_frames[:30] + [SILENCE] * 50 + speech_frames[30:60]
    skipping, always = SpeechOpusEncoder(), SpeechOpusEncoder()
    start = skipping.frames_encoded
    skipped, full = [], []
    for i, pcm in enumerate(sequence):
        silent = pcm == SILENCE
        skipped.append(bytes(skipping.encode(pcm, i * FRAME_SAMPLES, silent=silent)))
        full.append(bytes(always.encode(pcm, i * FRAME_SAMPLES)))
    # Speech was encoded, and silence until the codec had gone quiet (the
    # cut-off word takes ~16 frames to fade), then no more.
    encoded_silence = skipping.frames_encoded - start - 60
    assert QUIET_FRAMES < encoded_silence < 30
    assert skipping.silence_reused == 50 - encoded_silence
    # The reused silence is byte for byte what the codec makes of silence...
    assert skipped[30:80] == full[30:80]
    # ...and the words after it still come out right.
    reference = np.frombuffer(b"".join(speech_frames[30:60]), dtype="<i2").astype(np.float64)
    assert snr_db(reference, decode(skipped)[80 * FRAME_SAMPLES :]) > 18


def test_a_fresh_encoder_is_quiet_and_has_the_silence_packet_ready() -> None:
    encoder = SpeechOpusEncoder()
    before = encoder.frames_encoded
    first = encoder.encode(SILENCE, 0, silent=True)
    assert encoder.frames_encoded == before  # nothing to prime at the start
    assert bytes(first) == bytes(encoder.silence(960))
    assert toc(bytes(first)) == (31, 0)


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="1920 bytes"):
        SpeechOpusEncoder().encode(bytes(100), 0)


async def _answer_sdp(codec: str | None) -> tuple[str, str | None]:
    """A real aiortc offer (optionally one codec only) answered by an aiortc
    peer that sends a track, as a session does."""
    from media_server.audio.outbound import AgentAudioTrack

    client, server = RTCPeerConnection(), RTCPeerConnection()
    try:
        transceiver = client.addTransceiver("audio")
        if codec:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            transceiver.setCodecPreferences([c for c in caps if c.name == codec])
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(
            RTCSessionDescription(sdp=client.localDescription.sdp, type="offer")
        )
        track = AgentAudioTrack()
        server.addTrack(track)
        await server.setLocalDescription(await server.createAnswer())
        mid = next(t.mid for t in server.getTransceivers() if t.sender.track is track)
        return server.localDescription.sdp, mid
    finally:
        await client.close()
        await server.close()


async def test_sends_opus_reads_the_negotiated_send_codec() -> None:
    sdp, mid = await _answer_sdp(None)
    assert sends_opus(sdp, mid)
    assert not sends_opus(sdp, "no-such-mid")
    assert not sends_opus(sdp, None)
    sdp, mid = await _answer_sdp("PCMU")
    assert not sends_opus(sdp, mid)
