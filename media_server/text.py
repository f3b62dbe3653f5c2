"""Pure text helpers for the turn: speakable sentence chunks and chat history.

Kept free of asyncio so they are trivially testable and cheap on the loop.
"""

from __future__ import annotations

import re
from collections import deque

from media_server.types import ChatMessage

# Markdown marks, emoji and other pictographs are read out literally by TTS
# engines ("asterisk asterisk"), so they are removed before synthesis.
_MARKDOWN_RE = re.compile(r"(\*{1,3}|_{2,3}|`{1,3}|^#{1,6}\s*|^\s*[-*+]\s+|^\s*>\s?)", re.M)
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f900-\U0001f9ff\U0000fe0f\U0000200d]"
)
_SPACE_RE = re.compile(r"\s+")
# A sentence ends at . ! ? (or their CJK forms) followed by space; a clause at , ; :
_SENTENCE_END_RE = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+")
_CLAUSE_END_RE = re.compile(r"(?<=[,;:])\s+")
# Openers that are a whole clause by themselves ("Sure," "Of course,"): said
# alone they sound as they would in the sentence, and the first audio need
# not wait for the words after them. Greetings are not here: "Hi, John."
# split after "Hi," sounds like two sentences.
_OPENERS = frozenset(
    """sure okay ok of-course certainly absolutely yes yeah yep no well right alright
    all-right great perfect got-it sorry no-problem understood thanks thank-you i-see
    good-question let-me-see hmm""".split()
)


def speakable(text: str) -> str:
    """Text with markdown and emoji removed and whitespace folded."""
    text = _LINK_RE.sub(r"\1", text)
    text = _MARKDOWN_RE.sub("", text)
    text = _EMOJI_RE.sub("", text)
    return _SPACE_RE.sub(" ", text).strip()


class SentenceChunker:
    """Cuts a streamed reply into pieces worth sending to TTS.

    The first piece may end at a clause boundary once it has a few words, or
    at the comma after an opener ("Sure," "Of course,"), so the first audio
    does not wait for a long opening sentence; later pieces
    end at sentence boundaries, which sound more natural. A piece that grows
    past ``max_chars`` without a boundary is cut at the last space.
    """

    def __init__(self, *, first_min_words: int = 4, max_chars: int = 300) -> None:
        self._buffer = ""
        self._emitted = 0
        self._first_min_words = first_min_words
        self._max_chars = max_chars

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        pieces: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._emit(piece, pieces)
        return pieces

    def flush(self) -> list[str]:
        pieces: list[str] = []
        piece, self._buffer = self._buffer, ""
        self._emit(piece, pieces)
        return pieces

    def _emit(self, piece: str, pieces: list[str]) -> None:
        spoken = speakable(piece)
        if spoken:
            pieces.append(spoken)
            self._emitted += 1

    def _find_cut(self) -> int | None:
        match = _SENTENCE_END_RE.search(self._buffer)
        if match:
            return match.end()
        if self._emitted == 0:
            # "Sure," as the stream's last token: the space that would show the
            # clause over comes with the next token, 20 ms or more later.
            head = self._buffer.rstrip()
            if head.endswith(",") and _is_opener(head.split()):
                return len(self._buffer)
            for clause in _CLAUSE_END_RE.finditer(self._buffer):
                words = self._buffer[: clause.start()].split()
                if len(words) >= self._first_min_words or _is_opener(words):
                    return clause.end()
        if len(self._buffer) > self._max_chars:
            space = self._buffer.rfind(" ", 0, self._max_chars)
            return space + 1 if space > 0 else self._max_chars
        return None


def _is_opener(words: list[str]) -> bool:
    key = "-".join(w.strip(",;:").lower() for w in words)
    return key in _OPENERS


class ConversationHistory:
    """The turns of one conversation, trimmed to a bound.

    Only what the person actually heard of a reply is kept (barge-in), so the
    model does not believe it said things the person never heard.
    """

    def __init__(self, max_messages: int = 20) -> None:
        self._messages: deque[ChatMessage] = deque(maxlen=max_messages)

    def add_user(self, text: str) -> None:
        self._messages.append(ChatMessage("user", text))

    def retract_user(self, text: str) -> None:
        """Take back the last message if it is the person's ``text`` (their
        turn went on and will be added again, whole)."""
        if self._messages and self._messages[-1] == ChatMessage("user", text):
            self._messages.pop()

    def add_tool_rounds(self, messages: list[ChatMessage]) -> None:
        """A turn's finished tool calls and their answers, before its reply.
        (Trimming from the front never splits them from their user message:
        ``messages()`` drops whatever precedes the first user message.)"""
        self._messages.extend(messages)

    def add_assistant(self, text: str) -> None:
        if text.strip():
            self._messages.append(ChatMessage("assistant", text.strip()))

    def messages(self, system_prompt: str) -> list[ChatMessage]:
        return self._with_system(system_prompt, list(self._messages))

    def messages_with_user(self, system_prompt: str, text: str) -> list[ChatMessage]:
        """What ``messages()`` will be once ``add_user(text)`` (the history
        itself unchanged): the request a preemptive reply makes."""
        history = deque(self._messages, maxlen=self._messages.maxlen)
        history.append(ChatMessage("user", text))
        return self._with_system(system_prompt, list(history))

    @staticmethod
    def _with_system(system_prompt: str, history: list[ChatMessage]) -> list[ChatMessage]:
        # A conversation sent to a model should open with the person speaking.
        while history and history[0].role != "user":
            history.pop(0)
        return [ChatMessage("system", system_prompt), *history]

    def __len__(self) -> int:
        return len(self._messages)


def heard_prefix(pieces: list[tuple[str, int]], played_samples: int) -> str:
    """The part of a reply a person heard, given ``(text, samples)`` pieces in
    play order and how many samples were played. A partly played piece keeps
    the proportional share of its words."""
    heard: list[str] = []
    remaining = played_samples
    for text, samples in pieces:
        if remaining <= 0:
            break
        if remaining >= samples:
            heard.append(text)
        else:
            words = text.split()
            keep = int(len(words) * remaining / max(samples, 1))
            if keep:
                heard.append(" ".join(words[:keep]) + "…")
        remaining -= samples
    return " ".join(heard)
