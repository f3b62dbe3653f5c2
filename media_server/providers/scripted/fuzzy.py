"""Forgiving rough transcripts before the scripted agents read them.

An offline recognizer hears "my wife is not working" for "my wifi…", writes
"415-555-0123" or "41, 5, 5 and 5" for a phone number, "3.30" for a time and
"the 8" or "the eighth" for a date. ``repair`` rewrites such a turn into the
words the rules already know, and ``reprompt`` says what the agent can do
(with examples of what to say) when it still understood nothing.

What it does, in order, all pure functions on text:

1. numbers as digits the rules read: "3.30" -> "3:30", "415-555-0123" -> "415 555 0123",
   and inside a run of digits "to"/"too" -> 2, "for" -> 4, "oh" -> 0, commas and "and" dropped;
2. dates: ordinal words after "the" or a month ("the eighth", "june twenty first") and
   "on the 8" become "the 8th";
3. times: a number heard as a word that sounds like it at the start of a
   turn, before "(in) the afternoon" ("To the afternoon" -> "2 in the
   afternoon"), and "3 end the morning" -> "3 in the morning";
4. keywords: a word of four letters or more that is not a common English word
   and is one edit (two, for seven letters or more; past four letters with the
   same first letter) from exactly one word the persona's rules look for is
   taken for that word ("wife" -> "wifi" for support,
   "cast" -> "cost" for sales, "wensday" -> "wednesday" for everyone).

The rules themselves (receptionist, sales, support) are unchanged: this runs
once per turn in ``compose._respond``, before ``read_turn``.
"""

from __future__ import annotations

import re
from functools import cache

_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_SUFFIX = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}

# Words every persona's rules look for.
_SHARED = """appointment monday tuesday wednesday thursday friday saturday sunday tomorrow
    morning afternoon evening goodbye thanks thank hello password account""".split()
VOCABULARY: dict[str, set[str]] = {
    "receptionist": set(_SHARED)
    | set(
        """book booking cancel reschedule postpone checkup doctor visit hours open closed
        emergency prescription vaccination consultation""".split()
    ),
    "sales": set(_SHARED)
    | set(
        """pricing price prices cost costs plan plans demo demonstration trial features
        discount expensive cheaper enterprise starter integrations""".split()
    ),
    "callcenter": set(_SHARED)
    | set(
        """login sign crash crashing crashes slow wifi internet router connect connection
        email reset frozen freezes error update restart reinstall billing""".split()
    ),
    "generic": set(_SHARED),
}

# Common English words that are one edit from a keyword but mean themselves
# ("most" is not "cost", "life" not "wifi"): never corrected.
_COMMON = set(
    """also away back best book came come could does done down each even ever fine five
    four from gave give gone good have here hope into just keep kind know last late left
    life like line live long look made make many mine more most much must name need never
    next nice none note once only open over past plan post read real rest said same save
    says seen send sent show sick side sign some soon sort such sure take talk tell than
    that them then they this time told took true turn very wait want well went were what
    when will wish with word work year your most host lost post last fast
    wide wise wire fire hire hour hours ours sound round around found thing think things
    there their these those where which while would should night right light might sight
    working morning calling talking walking waiting wanting doing going coming
    tight eight prime pride crush flash slot show snow blow glow
    """.split()
)


def _edits_within(a: str, b: str, limit: int) -> bool:
    """Whether a and b are at most ``limit`` edits apart (Levenshtein, early exit)."""
    if abs(len(a) - len(b)) > limit:
        return False
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        best = row[0]
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
            best = min(best, row[j])
        if best > limit:
            return False
    return row[-1] <= limit


@cache
def _closest(word: str, persona: str) -> str:
    vocab = VOCABULARY.get(persona, VOCABULARY["generic"])
    if len(word) < 4 or word in vocab or word in _COMMON or not word.isalpha():
        return word
    limit = 2 if len(word) >= 7 else 1
    # Past four letters the first sound is rarely misheard ("working" is not "morning").
    candidates = vocab if len(word) == 4 else {v for v in vocab if v[0] == word[0]}
    matches = sorted(v for v in candidates if _edits_within(word, v, limit))
    return matches[0] if len(matches) == 1 else word  # two candidates: do not guess


def _ordinal(n: int) -> str:
    return f"{n}{_SUFFIX.get(n, 'th')}"


def _numbers(text: str) -> str:
    text = re.sub(r"(\d{1,2})\.(\d{2})\b", r"\1:\2", text)  # "3.30" is a time
    text = re.sub(r"(?<=\d)-(?=\d)", " ", text)  # "415-555-0123"
    text = re.sub(r"(?<=\d),\s*(?=\d)", " ", text)  # "41, 5, 5"
    # Inside a run of digits a recognizer writes a digit's sound as a word.
    sounds = {"to": "2", "too": "2", "two": "2", "for": "4", "oh": "0", "o": "0", "and": ""}
    pattern = re.compile(r"(?<=\d) (to|too|for|oh|o|and) (?=\d)")
    while (m := pattern.search(text)) is not None:
        word = sounds[m.group(1)]
        text = text[: m.start()] + (f" {word} " if word else " ") + text[m.end() :]
    return re.sub(r" {2,}", " ", text)


def _dates(text: str) -> str:
    names = "|".join(_ORDINAL_WORDS)
    tens = r"(twenty|thirty)"

    def compound(m: re.Match[str]) -> str:
        base = 20 if m.group(2) == "twenty" else 30
        return f"{m.group(1)}{_ordinal(base + _ORDINAL_WORDS[m.group(3)])}"

    lead = rf"(\bthe |\b(?:{_MONTHS}) )"
    text = re.sub(rf"{lead}{tens} ({names})\b", compound, text)
    text = re.sub(
        rf"{lead}({names})\b(?! (?:time|thing|one|available|appointment))",
        lambda m: f"{m.group(1)}{_ordinal(_ORDINAL_WORDS[m.group(2)])}",
        text,
    )
    # "on the 8" (Whisper drops the "th"), not "on the 8 am" or "the 8 o'clock".
    return re.sub(
        r"\b(on|for|of) the (\d{1,2})\b(?!(?::| ?[ap]\.? ?m\b| o ?clock| people| \d))",
        lambda m: f"{m.group(1)} the {_ordinal(int(m.group(2)))}",
        text,
    )


# A number heard as a word that sounds like it, where a time must be: at the
# start of a turn, before "(in) the morning/afternoon/evening" ("two in the
# afternoon" -> "To the afternoon", "Tune in the afternoon"). "for" only with
# its "in": "for the afternoon" is an answer as it stands.
_PART = r"(morning|afternoon|evening)\b"
_LEAD = r"^((?:(?:um|uh|er|well|so|say|maybe|at|around|about)\W+)*)"
_TIME_SOUNDS = {"to": "2", "too": "2", "tune": "2", "ate": "8", "for": "4"}


def _times(text: str) -> str:
    text = re.sub(
        rf"{_LEAD}(to|too|tune|ate)\W+(?:(?:in|and|end)\W+)?the {_PART}",
        lambda m: f"{m.group(1)}{_TIME_SOUNDS[m.group(2)]} in the {m.group(3)}",
        text,
    )
    text = re.sub(
        rf"{_LEAD}for\W+in the {_PART}", lambda m: f"{m.group(1)}4 in the {m.group(2)}", text
    )
    # "ten end the morning", "7 and the evening": "in" heard as "and"/"end" after a number.
    return re.sub(rf"\b(\d{{1,2}})\W+(?:and|end) the {_PART}", r"\1 in the \2", text)


def repair(raw: str, persona: str) -> str:
    """The turn as the scripted rules will best read it (see the module doc)."""
    text = raw.lower().replace("’", "'")
    text = _times(_numbers(_dates(_numbers(text))))
    words = re.split(r"(\W+)", text)  # keep the separators, so punctuation survives
    return "".join(_closest(w, persona) if w.isalpha() else w for w in words)


# What the agent asks for, and how a person can say it.
_SLOT_HINTS = {
    "day": "the day, for example 'next Tuesday', 'tomorrow' or 'the 8th'",
    "time": "the time, for example '10 am', 'half past 2' or 'in the afternoon'",
    "name": "your name: please say 'my name is', then your name",
    "phone": "the number: please say the digits one by one",
}
EXAMPLES = {
    "receptionist": ("book an appointment for next Tuesday", "what are your opening hours"),
    "sales": ("how much does it cost", "I'd like a demo"),
    "callcenter": ("I forgot my password", "my wifi is not working"),
    "generic": ("hello", "what can you do"),
}


def reprompt(persona: str, capabilities: str, asked: str, misses: int) -> str:
    """A re-prompt that says what the agent can do, never the same apology twice."""
    first, second = EXAMPLES.get(persona, EXAMPLES["generic"])
    if asked in _SLOT_HINTS:
        lead = "Sorry, I didn't catch" if misses <= 1 else "I still need"
        return f"{lead} {_SLOT_HINTS[asked]}."
    if misses <= 1:
        return (
            "Sorry, I didn't quite get that. I'm running in offline demo mode, "
            f"so I can help with {capabilities}. "
            f"For example, you can say '{first}' or '{second}'."
        )
    return (
        "My offline speech recognition may have misheard you. "
        f"Short, simple words work best, like '{first}'. I can help with {capabilities}."
    )
