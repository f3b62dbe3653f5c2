"""Reading a caller turn: normalised words, number words as digits, and yes or no."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
} | {"oh": 0}
_TENS = {
    w: 10 * i
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)
}
_CONTRACTIONS = [
    (re.compile(r"\bcan'?t\b"), "can not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"\bi'?m\b"), "i am"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"\b(it|that|what|there|name|here)'s\b"), r"\1 is"),
    (re.compile(r"\b([ap])\.\s?m\b\.?"), r"\1m"),  # "p.m." -> "pm"
]
_MERGES = [(re.compile(p), r) for p, r in [(r"\bwi fi\b", "wifi"), (r"\be mail", "email")]]


def stems(*alternatives: str) -> re.Pattern[str]:
    """Any alternative at a word start; a stem also matches longer words (book -> booking)."""
    return re.compile(r"\b(?:" + "|".join(alternatives) + ")")


def _normalise(raw: str) -> str:
    text = raw.lower().replace("’", "'")
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = re.sub(r"[^a-z0-9: ]+", " ", text.replace("'", ""))
    text = re.sub(r"(\d)([a-z])", r"\1 \2", text)  # "3pm" -> "3 pm"
    for pattern, repl in _MERGES:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


def _digits_for_words(text: str) -> str:
    """Number words as digits: "twenty five" -> "25", but "five five five" stays three numbers."""
    out: list[str] = []
    open_kind = ""  # what the last number can still absorb: "tens", "hundred" or ""
    for tok in text.split():
        value = _UNITS.get(tok, _TENS.get(tok))
        if tok == "oh" and not (out and out[-1].isdigit()):
            value = None  # "oh" is zero only inside a run of digits
        if value is not None:
            if open_kind == "tens" and 0 < value < 10:
                out[-1] = str(int(out[-1]) + value)
                open_kind = ""
            elif open_kind == "hundred" and value < 100:
                out[-1] = str(int(out[-1]) + value)
                open_kind = "tens" if value in _TENS.values() else ""
            else:
                out.append(str(value))
                open_kind = "tens" if tok in _TENS else ""
        elif tok in ("hundred", "thousand"):
            scale = 100 if tok == "hundred" else 1000
            if out and out[-1].isdigit():
                out[-1] = str(int(out[-1]) * scale)
            else:
                out.append(str(scale))  # "a hundred"
            open_kind = "hundred"
        elif tok == "and" and open_kind == "hundred":
            continue
        else:
            out.append(tok)
            open_kind = ""
    text = " ".join(out)
    return re.sub(r"(\d) ([ap]) m\b", r"\1 \2m", text)  # "3 p m" -> "3 pm"


@dataclass(frozen=True, slots=True)
class Said:
    """One caller turn, read once."""

    text: str  # normalised words
    nums: str  # the same with number words as digits
    asked: str  # what our previous reply asked for ("name", "day", ...) or ""

    @property
    def words(self) -> set[str]:
        return set(self.text.split())

    def has(self, pattern: re.Pattern[str]) -> bool:
        return pattern.search(self.text) is not None


# What the previous reply's question asked for, recognised by its words.
_ASKED = [
    ("more", stems("anything else")),
    ("name", stems(r"your full name|your name|name please")),
    ("reason", stems("reason for")),
    ("phone", stems("phone number")),
    ("day", stems(r"what day|which day")),
    ("time", stems("what time")),
    ("team", stems("how many people")),
    ("need", stems("use it for")),
    ("result", stems(r"working now|were you able")),
    ("step", stems(r"when you have done|when you are done")),
]


def _asked(previous_reply: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", previous_reply.strip())
    questions = [s for s in sentences if s.endswith("?")] or sentences[-1:]
    if not questions:
        return ""
    last = _normalise(questions[-1])
    return next((key for key, rx in _ASKED if rx.search(last)), "")


_YES = {"yes", "yeah", "yep", "yup", "sure", "ok", "okay", "correct", "right", "alright", "please"}
_YES_RX = stems(r"sounds good|go ahead|of course|definitely|absolutely|let us")
_NO = {"no", "nope", "nah"}


def read_turn(raw: str, previous_reply: str = "") -> Said:
    """A caller's words, read in the light of what our previous reply asked."""
    text = _normalise(raw)
    return Said(text, _digits_for_words(text), _asked(previous_reply))


def is_yes(said: Said) -> bool:
    return bool(said.words & _YES) or said.has(_YES_RX)


def is_no(said: Said) -> bool:
    return bool(said.words & _NO) or said.has(stems(r"not really|no thanks"))
