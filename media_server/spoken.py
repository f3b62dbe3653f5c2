"""The agent's spoken reply: each piece synthesized and played, and what of
it the person heard.

``say(piece)`` synthesizes one piece of the reply (TTS under the turn's
deadlines, retried only while nothing of the reply has been played) and
queues its audio on the speaker as it arrives. ``heard()`` maps the
speaker's played-sample count back to the text of the pieces
(``text.heard_prefix``), so a reply cut short by a barge-in leaves in the
history only the words that were actually played.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from media_server.audio.speaker_feed import SpeakerFeed
from media_server.deadlines import Fallback, StageDeadlines, first_item, remaining_items
from media_server.providers.base import TextToSpeech
from media_server.text import heard_prefix
from media_server.transport import Speaker
from media_server.types import AudioChunk, ProviderError


class SpokenReply:
    def __init__(self, speaker: Speaker, *, on_first_audio: Callable[[float], None]) -> None:
        """``on_first_audio(at)``: the reply's first audio frame left the
        speaker at clock time ``at``."""
        self._speaker = speaker
        self._on_first_audio = on_first_audio
        self._pieces: list[tuple[str, int]] = []  # (text, samples) per finished piece
        self._played_base: int | None = None

    @property
    def started(self) -> bool:
        """Some audio of this reply reached the speaker (no retry after that)."""
        return self._played_base is not None

    async def say(
        self,
        piece: str,
        tts: TextToSpeech,
        voice_for: Callable[[str], str],
        deadlines: StageDeadlines,
        *,
        on_first_byte: Callable[[], object] = lambda: None,
        on_fallback: Fallback | None = None,
    ) -> None:
        """Synthesize ``piece`` and queue its audio; raises ``ProviderError``.
        ``voice_for(engine name)``: the agent's voice on that engine (a
        fallback engine speaks in its own)."""
        feed = SpeakerFeed()

        def open_stream(engine: TextToSpeech) -> AsyncIterator[AudioChunk]:
            return engine.synthesize(piece, voice_for(engine.name))

        # Retrying is fine until any audio of this reply reached the speaker;
        # another engine may take a piece that made no sound at any time.
        first, stream = await first_item(
            "tts", tts, open_stream, deadlines, lambda: not self.started, on_fallback
        )
        if stream is None:
            raise ProviderError("tts", "bad_output", "tts: no audio")
        on_first_byte()

        async def chunks() -> AsyncIterator[AudioChunk]:
            yield first
            async for chunk in remaining_items("tts", stream, deadlines):
                yield chunk

        samples = 0
        async for chunk in chunks():
            samples += await self.play(feed.convert(chunk))
            # A provider that sends faster than real time leaves many chunks
            # ready at once, and none of these awaits yields while they do:
            # decoding them in one go held the loop, and every session's
            # 20 ms frames, for 4-9 ms per reply under load (bench.capacity).
            await asyncio.sleep(0)
        samples += await self.play(feed.flush())
        if samples == 0:
            raise ProviderError("tts", "bad_output", "tts: no decodable audio")
        self._pieces.append((piece, samples))
        self._speaker.end_of_piece()

    async def play(self, pcm: bytes) -> int:
        """Queue 48 kHz mono PCM on the speaker; the samples queued."""
        if not pcm:
            return 0
        speaker = self._speaker
        if self._played_base is None:
            self._played_base = speaker.played_samples
            speaker.on_first_audio().add_done_callback(self._first_audio_out)
        await speaker.write(pcm)
        return len(pcm) // 2

    def heard(self) -> str:
        """The text of the reply up to where the speaker has played it."""
        if self._played_base is None:
            return ""
        return heard_prefix(self._pieces, self._speaker.played_samples - self._played_base)

    def _first_audio_out(self, fut: asyncio.Future[float]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        self._on_first_audio(fut.result())
