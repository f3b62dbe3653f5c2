"""ImmediateAudioJitterBuffer: each Opus packet out as soon as it is next."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from media_server.rtc import jitter
from media_server.rtc.jitter import SKIP_AFTER, ImmediateAudioJitterBuffer


def packet(seq: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=(seq * 960) % 2**32)
    p._data = f"opus-{seq % 65536}".encode()  # type: ignore[attr-defined]
    return p


def feed(buffer: JitterBuffer, seqs: list[int]) -> list[str | None]:
    """What comes out after each packet goes in (None: nothing yet)."""
    out = []
    for seq in seqs:
        _, frame = buffer.add(packet(seq))
        out.append(frame.data.decode() if frame is not None else None)
    return out


def test_in_order_packets_come_out_as_they_arrive() -> None:
    assert feed(ImmediateAudioJitterBuffer(), [100, 101, 102]) == [
        "opus-100",
        "opus-101",
        "opus-102",
    ]


def test_aiortc_buffer_holds_each_packet_until_four_more_arrive() -> None:
    # What the server used to do: the reason for this module. If aiortc
    # changes it, this test says so.
    out = feed(JitterBuffer(capacity=16, prefetch=4), list(range(100, 106)))
    assert out == [None, None, None, None, "opus-100", "opus-101"]


def test_timestamps_are_kept() -> None:
    _, frame = ImmediateAudioJitterBuffer().add(packet(7))
    assert frame is not None and frame.timestamp == 7 * 960


def test_a_reordered_packet_is_waited_for_and_order_kept() -> None:
    out = feed(ImmediateAudioJitterBuffer(), [1, 3, 2, 4, 5])
    # 3 waits for 2; 2 releases itself, 3 follows on the next arrival.
    assert out == ["opus-1", None, "opus-2", "opus-3", "opus-4"]


def test_a_lost_packet_is_skipped_once_enough_later_ones_wait() -> None:
    later = list(range(12, 12 + SKIP_AFTER + 2))
    out = feed(ImmediateAudioJitterBuffer(), [10, *later])  # 11 never comes
    assert out[0] == "opus-10"
    assert out[1:SKIP_AFTER] == [None] * (SKIP_AFTER - 1)
    assert out[SKIP_AFTER:] == ["opus-12", "opus-13", "opus-14"]


def test_the_delay_after_a_loss_does_not_grow_with_more_losses() -> None:
    buffer = ImmediateAudioJitterBuffer()
    seqs = [s for s in range(0, 200) if s % 20 != 5]  # one packet in 20 lost
    out = feed(buffer, seqs)
    released = [int(x.split("-")[1]) for x in out if x is not None]
    assert released == [s for s in seqs if s <= released[-1]]  # in order, nothing repeated
    lag = seqs[-1] - released[-1]
    assert lag <= SKIP_AFTER


def test_a_packet_that_comes_after_its_slot_was_skipped_is_dropped() -> None:
    buffer = ImmediateAudioJitterBuffer()
    assert feed(buffer, [10, 12, 13, 14, 15]) == ["opus-10", None, None, "opus-12", "opus-13"]
    # 11 is too late now; what was waiting keeps coming out in order.
    assert feed(buffer, [11, 16, 17]) == [None, "opus-14", "opus-15"]


def test_sequence_numbers_wrap() -> None:
    assert feed(ImmediateAudioJitterBuffer(), [65534, 65535, 65536, 65537]) == [
        "opus-65534",
        "opus-65535",
        "opus-0",
        "opus-1",
    ]


async def test_install_replaces_an_audio_receivers_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        assert jitter.install(transceiver.receiver) is True
        assert isinstance(
            transceiver.receiver._RTCRtpReceiver__jitter_buffer,  # type: ignore[attr-defined]
            ImmediateAudioJitterBuffer,
        )
    finally:
        await pc.close()


async def test_install_on_gives_every_audio_receiver_of_a_connection_the_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        audio = [pc.addTransceiver("audio", direction="recvonly") for _ in range(2)]
        video = pc.addTransceiver("video", direction="recvonly")
        jitter.install_on(pc)
        for transceiver in audio:
            assert isinstance(
                transceiver.receiver._RTCRtpReceiver__jitter_buffer,  # type: ignore[attr-defined]
                ImmediateAudioJitterBuffer,
            )
        assert type(video.receiver._RTCRtpReceiver__jitter_buffer) is JitterBuffer  # type: ignore[attr-defined]
    finally:
        await pc.close()


async def test_install_leaves_what_it_does_not_recognise(caplog: pytest.LogCaptureFixture) -> None:
    class Receiver:
        _RTCRtpReceiver__jitter_buffer = object()

    receiver = Receiver()
    before = receiver._RTCRtpReceiver__jitter_buffer
    assert jitter.install(receiver) is False
    assert receiver._RTCRtpReceiver__jitter_buffer is before
    assert "prefetch delay" in caplog.text
