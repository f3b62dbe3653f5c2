"""Text cut into sentences for the embedded voices (espeak-ng, Piper).

Both synthesize a sentence at a time: the first audio is ready after one
sentence rather than the whole reply, an abandoned reply costs at most one
sentence of work, and the audio held for a slow consumer is one sentence.
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? ; : or a newline; overly long runs are cut at a comma or space.
_SENTENCE_RE = re.compile(r"(?<=[.!?;:])\s+|\n+")
MAX_PIECE_CHARS = 300


def split_sentences(text: str) -> list[str]:
    """Text cut into pieces of at most ``MAX_PIECE_CHARS`` at natural boundaries."""
    pieces: list[str] = []
    for sentence in _SENTENCE_RE.split(text):
        sentence = sentence.strip()
        while len(sentence) > MAX_PIECE_CHARS:
            head = sentence[:MAX_PIECE_CHARS]
            cut = max(head.rfind(", "), head.rfind(" "))
            cut = cut + 1 if cut > 0 else MAX_PIECE_CHARS
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces
