"""A streamed TTS response body turned into ``AudioChunk``s: one loop for every cloud TTS.

OpenAI and ElevenLabs both answer a speech request with a body of raw PCM or
MP3 bytes, cut wherever the network cut it. What the pipeline needs from that
body is the same for both, and had drifted when each provider kept its own
copy of the loop:

* PCM is passed on sample-aligned: an odd trailing byte is held back and
  prepended to the next piece, so no consumer ever sees half a sample (a
  lone byte left at the very end of the body is dropped);
* MP3 goes through ``errors.Mp3Sniffer``, so an error page served as audio
  is refused before it reaches the decoder, and whatever the sniffer still
  holds is flushed when the body ends;
* a body with no bytes at all is ``bad_output``, not silence.

Status and content-type checks and the mapping of client exceptions stay in
each provider: they differ by client stack. The caller owns ``body`` (closing
the response closes it) and should close this generator (``aclosing``) when it
stops early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from media_server.types import AudioChunk

from . import errors


async def audio_chunks(body: AsyncIterator[bytes], *, pcm_rate: int) -> AsyncIterator[AudioChunk]:
    """``body`` as audio: s16le mono PCM at ``pcm_rate`` Hz, or MP3 when ``pcm_rate`` is 0.

    Raises ``ProviderError`` (``bad_output``) when the body is empty or, for
    MP3, does not start like MP3.
    """
    sniffer = errors.Mp3Sniffer("tts")
    carry = b""  # an odd trailing byte of PCM, held for the next piece
    total = 0
    async for data in body:
        if not data:
            continue
        total += len(data)
        if pcm_rate:
            data, carry = carry + data, b""
            if len(data) % 2:
                data, carry = data[:-1], data[-1:]
            if data:
                yield AudioChunk(data, "pcm", pcm_rate, 1)
        elif data := sniffer.feed(data):
            yield AudioChunk(data, "mp3")
    if tail := sniffer.flush():  # never fed for PCM, so nothing to flush there
        yield AudioChunk(tail, "mp3")
    if total == 0:
        raise errors.bad_output("tts", "empty audio body")
