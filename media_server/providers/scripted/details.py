"""Details pulled out of a caller turn: day, time, name, phone digits, team size."""

from __future__ import annotations

import re
from collections.abc import Sequence

from media_server.providers.scripted.reading import Said, stems

_ANY_TIME = stems(r"any ?time|whenever|do not mind|earliest|first available")

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_RX = re.compile(r"\b(next |this )?(mon|tues|wednes|thurs|fri|satur|sun)days?\b")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE_RX = re.compile(rf"\b({_MONTHS}) (\d{{1,2}})(?: ?(?:st|nd|rd|th))?\b")
_ORDINAL_RX = re.compile(r"\bthe (\d{1,2}) ?(?:st|nd|rd|th)\b")


def find_day(said: Said) -> str | None:
    if m := _DAY_RX.search(said.text):
        prefix = "next " if m.group(1) == "next " else ""
        return prefix + next(d for d in _DAYS if d.startswith(m.group(2))).capitalize()
    if "day after tomorrow" in said.text:
        return "the day after tomorrow"
    for word in ("tomorrow", "today"):
        if re.search(rf"\b{word}\b", said.text):
            return word
    if m := _DATE_RX.search(said.nums):
        return f"{m.group(1).capitalize()} {int(m.group(2))}"
    if m := _ORDINAL_RX.search(said.nums):
        return f"the {int(m.group(1))}th"
    if said.asked == "day" and said.has(_ANY_TIME):
        return "tomorrow"
    return None


_TIME_AMPM = re.compile(r"\b(\d{1,2})(?:[: ](\d{2}))? (am|pm)\b")
_TIME_OCLOCK = re.compile(r"\b(\d{1,2})(?:[: ](\d{2}))? (?:o ?)?clock\b")
_TIME_PART = re.compile(
    r"\b(\d{1,2})(?:[: ](\d{2}))? (?:o ?clock )?in the (morning|afternoon|evening)"
)
_TIME_AT = re.compile(r"\bat (\d{1,2})(?:[: ](\d{2}))?\b(?! ?\d)")
_TIME_HALF = re.compile(r"\bhalf past (\d{1,2})\b")
_PART_OF_DAY = re.compile(r"\b(?:in the|this|tomorrow|\w*day) (morning|afternoon|evening)\b")


def _clock(hour: int, minute: int, ampm: str | None) -> str | None:
    if hour > 23 or minute > 59:
        return None
    if ampm is None:
        if hour >= 13:
            hour, ampm = hour - 12, "pm"
        else:  # office hours: 7 to 11 mean morning, 12 to 6 afternoon
            ampm = "am" if 7 <= hour <= 11 else "pm"
    if hour == 0 or hour > 12:
        return None
    return f"{hour}:{minute:02d} {ampm}" if minute else f"{hour} {ampm}"


def find_time(said: Said) -> str | None:
    nums = said.nums
    if m := _TIME_AMPM.search(nums):
        return _clock(int(m.group(1)), int(m.group(2) or 0), m.group(3))
    if m := _TIME_PART.search(nums):
        return _clock(
            int(m.group(1)), int(m.group(2) or 0), "am" if m.group(3) == "morning" else "pm"
        )
    for rx in (_TIME_OCLOCK, _TIME_AT):
        if m := rx.search(nums):
            return _clock(int(m.group(1)), int(m.group(2) or 0), None)
    if m := _TIME_HALF.search(nums):
        return _clock(int(m.group(1)), 30, None)
    if re.search(r"\b(?:noon|midday|lunch ?time)\b", said.text):
        return "noon"
    if m := _PART_OF_DAY.search(said.text):
        return f"in the {m.group(1)}"
    if said.asked == "time":
        if said.has(_ANY_TIME):
            return "9 am"
        if m := re.fullmatch(r"(?:\D* )?(\d{1,2})(?: (\d{2}))?(?: \D*)?", nums):
            return _clock(int(m.group(1)), int(m.group(2) or 0), None)
    return None


# Words that end a name or show that what follows "this is" / "i am" is not one.
_NOT_NAME = set(
    """a an the and or but so to for of in on at by with from about my your our i me you it
    is am are was be been calling call looking interested trying having going here there
    fine good great well ok okay sure yes yeah no not just really very still also actually
    sorry hello hi hey please thanks thank that this what who need want like would could
    can will wondering phone number appointment booking today tomorrow morning afternoon
    evening new problem calling help um uh er erm hmm ah oh urgent important serious bad
    terrible awful ridiculous annoying weird strange broken impossible crazy totally
    definitely probably basically""".split()
) | set(_DAYS)
# "this is ..." names the caller only at the start ("this is urgent" is not a name).
_NAME_INTRO = re.compile(
    r"\b(?:my name is|my names|name is|call me)\s+(.*)"
    r"|^(?:(?:hi|hello|hey|yes|yeah) )*this is\s+(.*)"
)
_NAME_FILLER = re.compile(
    r"^(?:(?:yes|yeah|sure|ok|okay|hi|hello|um|uh|er|it is|its|i am|the name is)\s+)+"
)


def _name_from(words: list[str], whole: bool) -> str | None:
    taken: list[str] = []
    for word in words[:3]:
        # "-ing" words ("regarding", "wondering") are almost never names.
        if word in _NOT_NAME or not word.isalpha() or len(word) < 2 or word.endswith("ing"):
            break
        taken.append(word.capitalize())
    if not taken or (whole and len(taken) != len(words)):
        return None
    return " ".join(taken[:2])


def find_name(said: Said) -> str | None:
    if m := _NAME_INTRO.search(said.text):
        return _name_from((m.group(1) or m.group(2)).split(), whole=False)
    if said.asked == "name":
        rest = _NAME_FILLER.sub("", said.text)
        return _name_from(rest.split(), whole=len(rest.split()) <= 3)
    return None


def find_phone(said: Said) -> str | None:
    """A run of at least seven digits (spoken or written) as a digit string."""
    best = ""
    for run in re.findall(r"(?:\b(?:\d+|oh)\b ?)+", said.nums):
        digits = "".join("0" if tok == "oh" else tok for tok in run.split())
        best = max(best, digits, key=len)
    return best if len(best) >= 7 else None


def speak_digits(digits: str) -> str:
    """Digits read one by one in groups ("5 5 5, 1 2 3, 4 5 6 7"), as a person reads a number."""
    groups: list[str] = []
    rest = digits
    while len(rest) > 4:
        cut = len(rest) - 4 if len(rest) <= 7 else 3
        groups.append(rest[:cut])
        rest = rest[cut:]
    groups.append(rest)
    return ", ".join(" ".join(g) for g in groups)


_COUNT_RX = re.compile(
    r"\b(\d+) (?:people|persons?|users?|employees|members|seats|staff|developers|engineers"
    r"|agents|of us|licen[cs]es|person)\b|\bteam of (\d+)\b|\b(?:we are|there are) (\d+)\b"
)


def find_count(said: Said) -> int | None:
    if said.has(stems(r"just me\b|only me\b|myself|solo\b|freelanc|on my own")):
        return 1
    if m := _COUNT_RX.search(said.nums):
        return int(next(g for g in m.groups() if g))
    if said.asked == "team" and (m := re.search(r"\b(\d+)\b", said.nums)):
        return int(m.group(1))
    return None


def keyword_phrase(said: Said, table: Sequence[tuple[re.Pattern[str], str]]) -> str | None:
    return next((phrase for rx, phrase in table if said.has(rx)), None)


def free_answer(said: Said, fillers: re.Pattern[str], max_words: int = 8) -> str | None:
    """What the caller said in answer to an open question, minus lead-in words."""
    rest = fillers.sub("", said.text).split()
    return " ".join(rest[:max_words]) if rest else None
