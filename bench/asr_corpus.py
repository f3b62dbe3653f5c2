"""What bench.offline_asr says to the recognizers, and how it scores their words.

Two sets, written as a person would say them (numbers as the words spoken):

- ``UTTERANCES``: greetings, names, dates and times, phone numbers and the
  scripted agents' intents; scored by word error rate.
- ``HELD_OUT_TURNS``: booking, support and sales turns, each with the agent
  question it answers (if any). None of them was used to write the scripted
  agents' rules or the fuzzy matching: they are the test, not the training.
  A turn is *understood* when the scripted agent answers the transcript as
  it answers the words actually said (and that answer is not its "didn't
  get that").

Scoring normalises both sides the same way (Whisper's habit of writing
"3:30" and "415-555-0123" is not a recognition error): lowercase, no
punctuation, numbers written as the words a person says.
"""

from __future__ import annotations

import re

UTTERANCES: list[tuple[str, str]] = [
    ("greeting", "hello there"),
    ("greeting", "hi good morning"),
    ("greeting", "hey how are you doing today"),
    ("greeting", "thank you very much goodbye"),
    ("name", "my name is larry lopez"),
    ("name", "this is sarah johnson"),
    ("name", "my name is david miller"),
    ("name", "it is emily brown"),
    ("date", "next tuesday please"),
    ("date", "can i come in on the eighth"),
    ("date", "how about friday the twelfth"),
    ("date", "tomorrow afternoon would be great"),
    ("time", "at three thirty in the afternoon"),
    ("time", "ten in the morning works for me"),
    ("time", "is nine am available"),
    ("phone", "my number is four one five five five five zero one two three"),
    ("phone", "you can reach me at six five zero two two two nine eight seven six"),
    ("intent", "i would like to book an appointment"),
    ("intent", "i need to cancel my appointment"),
    ("intent", "can i move my appointment to another day"),
    ("intent", "what are your opening hours"),
    ("intent", "how much does the pro plan cost"),
    ("intent", "i would like a demo for my team"),
    ("intent", "do you have a free trial"),
    ("intent", "i forgot my password"),
    ("intent", "the app keeps crashing"),
    ("intent", "my wifi is not working"),
    ("intent", "i can not log in to my account"),
]

# The conversation so far of a turn that needs one: the caller asked to book.
BOOKING_PHONE = (
    "user: i would like to book an appointment || "
    "assistant: Sure. And what phone number can we reach you on?"
)
# (persona, what the agent said before (or the conversation so far, turns
# as "role: text" joined by " || "), what the caller says)
HELD_OUT_TURNS: list[tuple[str, str, str]] = [
    ("receptionist", "", "hi i want to make an appointment please"),
    ("receptionist", "", "could i book a check up for next monday"),
    ("receptionist", "", "i have to cancel my appointment on thursday"),
    ("receptionist", "", "can i reschedule my visit"),
    ("receptionist", "", "when are you open on saturday"),
    ("receptionist", "What day would suit you?", "next wednesday"),
    ("receptionist", "What day would suit you?", "thursday would be good"),
    ("receptionist", "What time would you like?", "two in the afternoon"),
    ("receptionist", "What time would you like?", "around ten thirty in the morning"),
    ("receptionist", "Can I have your full name, please?", "my name is james wilson"),
    ("receptionist", "Can I have your full name, please?", "maria garcia"),
    (
        "receptionist",
        BOOKING_PHONE,
        "it is three one two five five five seven eight nine zero",
    ),
    ("callcenter", "", "i can not sign in to my account"),
    ("callcenter", "", "i need to reset my password"),
    ("callcenter", "", "my computer is really slow"),
    ("callcenter", "", "the application crashes when i open it"),
    ("callcenter", "", "the internet keeps dropping"),
    ("callcenter", "", "my wifi does not connect"),
    ("sales", "", "how much does it cost"),
    ("sales", "", "can you tell me about your pricing"),
    ("sales", "", "i would like to see a demo"),
    ("sales", "", "is there a free trial"),
    ("sales", "", "what features do you have"),
    ("sales", "How many people are on your team?", "about twenty people"),
]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = {
    "1": "first",
    "2": "second",
    "3": "third",
    "4": "fourth",
    "5": "fifth",
    "6": "sixth",
    "7": "seventh",
    "8": "eighth",
    "9": "ninth",
    "10": "tenth",
    "11": "eleventh",
    "12": "twelfth",
    "13": "thirteenth",
    "20": "twentieth",
    "21": "twenty first",
    "30": "thirtieth",
    "31": "thirty first",
}


_CONTRACTIONS = [
    (r"\bcan'?t\b|\bcannot\b", "can not"),
    (r"\bwon'?t\b", "will not"),
    (r"n't\b", " not"),
    (r"\bi'm\b", "i am"),
    (r"\b(it|that|what)'s\b", r"\1 is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'re\b", " are"),
    (r"'ve\b", " have"),
]


# Words English writes more than one way; each is scored in one spelling
# (as Whisper's own text normaliser does for British and American spellings):
# "Wi-Fi" is not a recognition error for "wifi", nor "log into" for "log in to".
_SPELLINGS = [
    (r"\bwi[- ]?fi\b", "wifi"),
    (r"\be[- ]mail\b", "email"),
    (r"\binto\b", "in to"),
    (r"\bonto\b", "on to"),
    (r"\bcheck-?up\b", "check up"),
    (r"\b(log|sign)-?(in|on|out|up)\b", r"\1 \2"),
]


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")


def _spell(match: re.Match[str]) -> str:
    token = match.group(0)
    if m := re.fullmatch(r"(\d{1,2})[:.](\d{2})", token):  # a clock time
        hour, minute = int(m.group(1)), int(m.group(2))
        if minute == 0:
            return number_words(hour)
        tail = f"oh {_ONES[minute]}" if minute < 10 else number_words(minute)
        return f"{number_words(hour)} {tail}"
    if m := re.fullmatch(r"(\d{1,2})(st|nd|rd|th)", token):
        return _ORDINALS.get(m.group(1), number_words(int(m.group(1))) + "th")
    digits = re.sub(r"\D", "", token)
    if len(digits) >= 5 or (len(digits) > 1 and digits[0] == "0") or "-" in token:
        return " ".join(_ONES[int(d)] for d in digits)  # a phone number: digit by digit
    return number_words(int(digits))


def normalize(text: str) -> list[str]:
    """Words to score: lowercase, no punctuation, numbers as spoken words."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\b(\d)\s*([ap])\.?\s?m\b\.?", r"\1 \2m", text)
    text = re.sub(r"\b([ap])\.m\.", r"\1m", text)
    text = re.sub(
        r"\d[\d-]*\d(?:st|nd|rd|th)?|\d(?:st|nd|rd|th)?|\d{1,2}[:.]\d{2}",
        _spell,
        re.sub(r"(\d{1,2})[:.](\d{2})", r"\1:\2", text),
    )
    for short, full in _CONTRACTIONS + _SPELLINGS:
        text = re.sub(short, full, text)
    text = text.replace("'", "").replace("-", " ")
    words = re.sub(r"[^a-z0-9 ]+", " ", text).split()
    return ["zero" if w == "oh" else w for w in words]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, words in the reference)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)
