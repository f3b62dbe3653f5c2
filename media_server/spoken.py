"""What of a reply reached the speaker, and what of it the person heard.

A turn writes each synthesized piece's audio through ``play`` and marks the
piece done; ``heard()`` maps the speaker's played-sample count back to the
text of the pieces (``text.heard_prefix``), so a reply cut short by a
barge-in leaves in the history only the words that were actually played.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from media_server.audio.outbound import AgentAudioTrack
from media_server.text import heard_prefix


class SpokenReply:
    def __init__(
        self, speaker: AgentAudioTrack, *, on_first_audio: Callable[[float], None]
    ) -> None:
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

    def piece_done(self, text: str, samples: int) -> None:
        self._pieces.append((text, samples))

    def heard(self) -> str:
        """The text of the reply up to where the speaker has played it."""
        if self._played_base is None:
            return ""
        return heard_prefix(self._pieces, self._speaker.played_samples - self._played_base)

    def _first_audio_out(self, fut: asyncio.Future[float]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        self._on_first_audio(fut.result())
