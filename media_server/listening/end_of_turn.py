"""How long a pause must last before the person's turn is over.

``silence`` (today's behaviour everywhere): a fixed pause, ``TURN_SILENCE_MS``.
``lexical`` (the default): the transcript so far decides, at each pause:

- a finished sentence ("What time do you open tomorrow?") ends the turn
  after ``VAD_SILENCE_MS``, the shortest pause;
- an unfinished one (trailing "for", "and", "um", "my number is 555…")
  keeps listening up to ``TURN_MAX_WAIT_MS``;
- no transcript (none on its way, or it failed), or one it cannot read
  (another language, one short word), waits ``TURN_SILENCE_MS``, as
  ``silence`` would; while one is on its way the listener waits for it.

The reading is ``completion.completion``; this module only maps it to a wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from media_server.listening.completion import LANGUAGES, Completion, completion

if TYPE_CHECKING:
    from media_server.config import Settings

Detector = Literal["silence", "lexical"]
DETECTORS: tuple[str, ...] = ("auto", "silence", "lexical")


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    detector: Detector = "lexical"
    min_wait_ms: int = 200  # after a finished sentence
    default_wait_ms: int = 500  # when the words cannot tell (and for ``silence``)
    max_wait_ms: int = 1800  # after an unfinished sentence
    language: str | None = "en"

    def __post_init__(self) -> None:
        if not 0 < self.min_wait_ms <= self.default_wait_ms <= self.max_wait_ms:
            raise ValueError(
                "end of turn: need 0 < min_wait_ms <= default_wait_ms <= max_wait_ms, got "
                f"{self.min_wait_ms}, {self.default_wait_ms}, {self.max_wait_ms}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> EndOfTurn:
        """``auto`` reads the words when it knows the language's rules (the
        agent's language is STT_LANGUAGE; unset means English)."""
        language = settings.stt_language or "en"
        detector = settings.turn_detector
        if detector == "auto":
            known = language.split("-")[0].split("_")[0].lower() in LANGUAGES
            detector = "lexical" if known else "silence"
        # Each wait at least the one before: VAD_SILENCE_MS=700 set alone (it
        # used to be the only pause) still means "never end before 700 ms".
        shortest = settings.vad_silence_ms
        default = max(shortest, settings.turn_silence_ms)
        return cls(
            detector=detector,  # type: ignore[arg-type]
            min_wait_ms=shortest,
            default_wait_ms=default,
            max_wait_ms=max(default, settings.turn_max_wait_ms),
            language=language,
        )

    @property
    def reads_words(self) -> bool:
        return self.detector == "lexical"

    @property
    def longest_wait_ms(self) -> int:
        """The pause after which a turn is over whatever was said."""
        return self.max_wait_ms if self.reads_words else self.default_wait_ms

    def reading(self, transcript: str | None) -> Completion | None:
        if not self.reads_words or transcript is None:
            return None
        return completion(transcript, self.language)

    def wait_ms(self, reading: Completion | None) -> int:
        """The pause that ends the turn, given the reading of its words."""
        if reading is None or reading.verdict == "unsure":
            return self.default_wait_ms
        return self.min_wait_ms if reading.verdict == "complete" else self.max_wait_ms
