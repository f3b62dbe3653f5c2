"""The one loop that turns a streamed TTS body into AudioChunks (providers/audio_body.py).

The providers' own tests run it through real HTTP; these feed it byte
pieces directly, so each edge (odd PCM splits, short or non-MP3 heads, empty
bodies) is pinned without a server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

import pytest

from media_server.providers.audio_body import audio_chunks
from media_server.types import AudioChunk, ProviderError

MP3_HEAD = b"\xff\xfb\x90\x00"  # an MPEG-1 layer III frame header
ID3_HEAD = b"ID3\x04\x00"


async def body(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def collect(pieces: Iterable[bytes], pcm_rate: int) -> list[AudioChunk]:
    return [chunk async for chunk in audio_chunks(body(pieces), pcm_rate=pcm_rate)]


async def test_pcm_odd_splits_are_carried_to_the_next_piece() -> None:
    pcm = bytes(range(20))
    pieces = [pcm[:3], pcm[3:4], pcm[4:9], b"", pcm[9:20]]
    chunks = await collect(pieces, 24000)
    assert all(len(c.data) % 2 == 0 and c.data for c in chunks)
    assert b"".join(c.data for c in chunks) == pcm
    # A one-byte piece completes the carried byte into one sample.
    assert [len(c.data) for c in chunks] == [2, 2, 4, 12]
    assert {(c.encoding, c.sample_rate, c.channels) for c in chunks} == {("pcm", 24000, 1)}


async def test_pcm_lone_trailing_byte_is_dropped() -> None:
    chunks = await collect([b"\x01\x02\x03"], 16000)
    assert [c.data for c in chunks] == [b"\x01\x02"]


async def test_pcm_single_byte_body_yields_nothing_but_is_not_empty() -> None:
    assert await collect([b"\x01"], 16000) == []


async def test_pcm_is_not_sniffed_for_mp3() -> None:
    chunks = await collect([b"<html>"], 22050)
    assert b"".join(c.data for c in chunks) == b"<html>"


@pytest.mark.parametrize("head", [MP3_HEAD, ID3_HEAD], ids=["frame-sync", "id3"])
async def test_mp3_passes_through_after_a_head_split_across_pieces(head: bytes) -> None:
    data = head + bytes(100)
    pieces = [data[:1], data[1:2], data[2:50], data[50:]]
    chunks = await collect(pieces, 0)
    assert b"".join(c.data for c in chunks) == data
    assert {(c.encoding, c.sample_rate) for c in chunks} == {("mp3", 0)}
    # The first two bytes are held until the head is known to be MP3.
    assert chunks[0].data == data[:50]


async def test_mp3_head_shorter_than_the_check_is_flushed_at_the_end() -> None:
    chunks = await collect([b"\xff\xfb"], 0)
    assert [c.data for c in chunks] == [b"\xff\xfb"]


@pytest.mark.parametrize(
    "pieces",
    [[b"<html><body>502</body></html>"], [b"{", b'"error": 1}'], [b"no"]],
    ids=["html", "json-split", "short-tail"],
)
async def test_non_mp3_is_bad_output_before_anything_is_yielded(pieces: list[bytes]) -> None:
    yielded: list[AudioChunk] = []
    with pytest.raises(ProviderError) as info:
        async for chunk in audio_chunks(body(pieces), pcm_rate=0):
            yielded.append(chunk)
    assert yielded == []
    assert (info.value.stage, info.value.kind) == ("tts", "bad_output")
    assert "MP3" in str(info.value)


@pytest.mark.parametrize("pcm_rate", [0, 24000], ids=["mp3", "pcm"])
@pytest.mark.parametrize("pieces", [[], [b"", b""]], ids=["no-pieces", "empty-pieces"])
async def test_empty_body_is_bad_output(pieces: list[bytes], pcm_rate: int) -> None:
    with pytest.raises(ProviderError) as info:
        await collect(pieces, pcm_rate)
    assert (info.value.stage, info.value.kind) == ("tts", "bad_output")
    assert "empty audio body" in str(info.value)


async def test_closing_early_reads_no_further_and_raises_nothing() -> None:
    # What turn.py does on barge-in: the consumer stops and closes the stream.
    read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        n = 0
        while True:
            read.append(n)
            n += 1
            yield b"\x00\x00"

    async with contextlib.aclosing(audio_chunks(endless(), pcm_rate=16000)) as chunks:
        async for _ in chunks:
            if len(read) == 3:
                break
    assert read == [0, 1, 2]
