"""The offline agent: honest, rule-based replies per persona. Not a language model.

With no API key the server still holds a useful conversation: a clinic
receptionist that books, moves and cancels appointments, a software sales
agent that explains plans and books demos, and a tech-support agent that walks
through fixes step by step. Replies are built from keywords, so they are
deterministic and testable.

The engine keeps no per-session state: every call replays the conversation it
is given (a few dozen turns at most, microseconds each), so one instance
serves all sessions and an interrupted or edited history is simply re-read.

Offline speech recognition is rough ("book an appointment" may arrive as
"look a pointment"), so matching works on lowercased word stems with a few
synonyms, and details (weekday, time, name, phone digits) are pulled out of
whatever words did arrive.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from media_server.providers.base import ChatMessage, ProviderError, ReplyOptions

log = logging.getLogger(__name__)

# ---- reading what the caller said ---------------------------------------------

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


def _rx(*alternatives: str) -> re.Pattern[str]:
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
class _Said:
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
    ("more", _rx("anything else")),
    ("name", _rx(r"your full name|your name|name please")),
    ("reason", _rx("reason for")),
    ("phone", _rx("phone number")),
    ("day", _rx(r"what day|which day")),
    ("time", _rx("what time")),
    ("team", _rx("how many people")),
    ("need", _rx("use it for")),
    ("result", _rx(r"working now|were you able")),
    ("step", _rx(r"when you have done|when you are done")),
]


def _asked(previous_reply: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", previous_reply.strip())
    questions = [s for s in sentences if s.endswith("?")] or sentences[-1:]
    if not questions:
        return ""
    last = _normalise(questions[-1])
    return next((key for key, rx in _ASKED if rx.search(last)), "")


_YES = {"yes", "yeah", "yep", "yup", "sure", "ok", "okay", "correct", "right", "alright", "please"}
_YES_RX = _rx(r"sounds good|go ahead|of course|definitely|absolutely|let us")
_NO = {"no", "nope", "nah"}
_GREETING = _rx(r"(?:hi|hello|hey|hiya|howdy)\b|good (?:morning|afternoon|evening)")
_THANKS = _rx(r"thank|thanks|cheers|appreciate")
_BYE = _rx(
    r"bye|goodbye|good bye|see you|that is all|that is it for|nothing else|"
    r"have a (?:good|nice|great) (?:day|one)|hang up"
)
_HOW_ARE_YOU = _rx(r"how are you|how is it going|how do you do")
# Not a bare "repeat": "a repeat prescription" is a reason for a visit.
_REPEAT = _rx(
    r"(?:can you|could you|please) repeat|repeat (?:that|it)\b|say (?:that|it) again|"
    r"pardon|come again|what did you say"
)
_IDENTITY = _rx(
    r"are you (?:a |an )?(?:robot|bot|human|real|person|machine|computer|ai\b)|"
    r"who are you\b|what are you\b|who am i (?:talking|speaking) to|your name"
)
_HUMAN = _rx(
    r"real person|a human|operator|representative|"
    r"(?:speak|talk) (?:to|with) (?:someone|somebody|a person)"
)
_HELP = _rx(r"what can you do|what do you do|how can you help|options|help me")
_ANY_TIME = _rx(r"any ?time|whenever|do not mind|earliest|first available")


def read_turn(raw: str, previous_reply: str = "") -> _Said:
    """A caller's words, read in the light of what our previous reply asked."""
    text = _normalise(raw)
    return _Said(text, _digits_for_words(text), _asked(previous_reply))


def _is_yes(said: _Said) -> bool:
    return bool(said.words & _YES) or said.has(_YES_RX)


def _is_no(said: _Said) -> bool:
    return bool(said.words & _NO) or said.has(_rx(r"not really|no thanks"))


# ---- details: day, time, name, phone, counts -------------------------------------

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_RX = re.compile(r"\b(next |this )?(mon|tues|wednes|thurs|fri|satur|sun)days?\b")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE_RX = re.compile(rf"\b({_MONTHS}) (\d{{1,2}})(?: ?(?:st|nd|rd|th))?\b")
_ORDINAL_RX = re.compile(r"\bthe (\d{1,2}) ?(?:st|nd|rd|th)\b")


def find_day(said: _Said) -> str | None:
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


def find_time(said: _Said) -> str | None:
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


def find_name(said: _Said) -> str | None:
    if m := _NAME_INTRO.search(said.text):
        return _name_from((m.group(1) or m.group(2)).split(), whole=False)
    if said.asked == "name":
        rest = _NAME_FILLER.sub("", said.text)
        return _name_from(rest.split(), whole=len(rest.split()) <= 3)
    return None


def find_phone(said: _Said) -> str | None:
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


def find_count(said: _Said) -> int | None:
    if said.has(_rx(r"just me\b|only me\b|myself|solo\b|freelanc|on my own")):
        return 1
    if m := _COUNT_RX.search(said.nums):
        return int(next(g for g in m.groups() if g))
    if said.asked == "team" and (m := re.search(r"\b(\d+)\b", said.nums)):
        return int(m.group(1))
    return None


def _keyword_phrase(said: _Said, table: Sequence[tuple[re.Pattern[str], str]]) -> str | None:
    return next((phrase for rx, phrase in table if said.has(rx)), None)


def _free_answer(said: _Said, fillers: re.Pattern[str], max_words: int = 8) -> str | None:
    """What the caller said in answer to an open question, minus lead-in words."""
    rest = fillers.sub("", said.text).split()
    return " ".join(rest[:max_words]) if rest else None


# ---- conversation state ------------------------------------------------------------


@dataclass
class _State:
    persona: str
    turns: int = 0
    task: str | None = None  # what we are in the middle of (e.g. "book", "login")
    slots: dict[str, str] = field(default_factory=dict)
    step: int = 0  # support: how many troubleshooting steps were given
    offer: str | None = None  # what this reply offers, for a bare "yes" next turn
    offered: str | None = None  # what the previous reply offered
    done: str | None = None  # the last thing we confirmed, for the goodbye
    misses: int = 0  # consecutive turns not understood

    def start(self, task: str, keep: Sequence[str] = ("name", "phone", "team", "need")) -> None:
        self.task, self.step = task, 0
        self.slots = {k: v for k, v in self.slots.items() if k in keep}


Handler = Callable[[_State, _Said], str | None]


def _when(day: str | None, time: str | None) -> str:
    if day and time:
        return f"{day} {time}" if time.startswith("in the") else f"{day} at {time}"
    return day or (time if not time or time.startswith("in the") else f"at {time}")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ticket(st: _State) -> str:
    # Deterministic, so a test can replay a conversation and hear the same number.
    return " ".join(str(zlib.crc32(f"{st.task}{st.turns}".encode()) % 9000 + 1000))


# ---- receptionist: a medical clinic -------------------------------------------------

_HOURS = (
    "We're open Monday to Friday from 8 am to 6 pm, and on Saturday from 9 am to 1 pm. "
    "We're closed on Sundays."
)
_EMERGENCY = _rx(
    r"emergenc|chest pain|can not breathe|(?:trouble|difficulty) breathing|"
    r"unconscious|heart attack|stroke|overdose|suicid|"
    r"(?:severe|heavy) bleeding|bleeding (?:a lot|heavily|badly)"
)
_CANCEL = _rx(r"cancel|call off|can not make it|will not make it")
_MOVE = _rx(
    r"reschedul|re schedul|move (?:my|the|it)|"
    r"change (?:my|the) (?:appoint|time|day|date)|"
    r"different (?:day|time|date)|postpone|push (?:it|my) back"
)
_BOOK = _rx(
    r"book|make an? (?:new )?appoint|new appoint|"
    r"(?:set up|schedule) an? appoint"
)
# Weaker signs of wanting an appointment: they start a booking only when nothing else is going on.
_BOOK_HINT = _rx(
    r"appoint|a pointment|schedul|see (?:a|the|my) doctor|see someone|"
    r"checkup|check up|visit|come in|consultation"
)
_HOURS_ASKED = _rx(r"hours|open|clos|when are you")
_NO_INFO = _rx(
    r"address|where are you|located|location|direction|parking|insurance|"
    r"how much|cost|price|results"
)
_REASONS = [
    (_rx(r"checkup|check up|physical|routine|annual"), "for a checkup"),
    (_rx(r"fever|temperature"), "for a fever"),
    (_rx(r"cough"), "for a cough"),
    (_rx(r"sore throat|throat"), "for a sore throat"),
    (_rx(r"flu\b|cold\b"), "for cold or flu symptoms"),
    (_rx(r"headache|migraine"), "for headaches"),
    (_rx(r"rash|skin|itch"), "for a skin problem"),
    (_rx(r"allerg"), "for allergies"),
    (_rx(r"vaccin|shot\b|jab\b|immuni"), "for a vaccination"),
    (_rx(r"blood (?:test|work)|lab\b|labs\b"), "for a blood test"),
    (_rx(r"prescription|refill|medication|medicine"), "for a prescription"),
    (_rx(r"follow ?up"), "for a follow up"),
    (_rx(r"(back|knee|neck|shoulder|stomach|ear|tooth|joint|foot|hip) (?:pain|ache|hurts)"), ""),
    (_rx(r"pain|hurts|ache"), "for pain"),
    (_rx(r"injur|sprain|broke|fell\b"), "for an injury"),
    (_rx(r"stomach|nause|vomit"), "for a stomach problem"),
]
_REASON_FILLER = re.compile(
    r"^(?:(?:yes|yeah|well|so|um|uh|it is|its|for|because|i need|i want|i would like|to|i have"
    r"|i have got|i got|i am having|i am|just|a|an|the)\s+)+"
)
_NEEDS = {
    "book": ("name", "reason", "day", "time", "phone"),
    "move": ("name", "day", "time"),
    "cancel": ("name", "day"),
}
_ASK_DAY = {
    "book": "What day would you like to come in?",
    "move": "What day would you like to move it to?",
    "cancel": "Which day is the appointment you want to cancel?",
}


def _on(day: str) -> str:
    return day if day.startswith(("tomorrow", "today", "the day", "next ")) else f"on {day}"


def _reason(said: _Said) -> str | None:
    for rx, phrase in _REASONS:
        if m := rx.search(said.text):
            return phrase or f"for {m.group(1)} pain"  # "my knee hurts" -> "for knee pain"
    if said.asked == "reason" and (answer := _free_answer(said, _REASON_FILLER)):
        return f"about {answer}"
    return None


def _reception_question(st: _State, key: str) -> str:
    if key == "day":
        return _ASK_DAY[st.task or "book"]
    if key == "time":
        day = st.slots.get("day")
        on_day = f" {_on(day)}" if day else ""
        return f"What time works best for you{on_day}? We're open from 8 am to 6 pm."
    return {
        "name": "May I have your full name, please?",
        "reason": "What is the reason for your visit?",
        "phone": "And what is the best phone number to reach you?",
    }[key]


def _reception_details(st: _State, said: _Said) -> tuple[dict[str, str], list[str]]:
    """Takes the details in this turn; returns the new ones and any notes to say first."""
    found = {
        "name": find_name(said),
        "day": find_day(said),
        "time": find_time(said),
        "phone": find_phone(said),
        "reason": _reason(said) if st.task in ("book", None) else None,
    }
    notes: list[str] = []
    if (found["day"] or "").endswith("Sunday"):
        found["day"] = None
        notes.append("I'm sorry, we're closed on Sundays.")
    if (
        said.asked == "phone"
        and not found["phone"]
        and re.search(r"\d{3}", said.nums.replace(" ", ""))
    ):
        notes.append("Sorry, I only caught part of that number.")
    new = {k: v for k, v in found.items() if v and st.slots.get(k) != v}
    st.slots.update(new)
    return new, notes


def _reception_ack(new: dict[str, str]) -> list[str]:
    parts = [f"Thanks, {new['name']}."] if "name" in new else []
    if "reason" in new:
        parts.append(f"I've noted that it's {new['reason']}.")
    if when := _when(new.get("day"), new.get("time")):
        parts.append(f"{_sentence(when)}, got it.")
    if "phone" in new:
        parts.append(f"I have your number as {speak_digits(new['phone'])}.")
    return parts


def _reception_confirm(st: _State) -> str:
    s, task = st.slots, st.task
    st.task = None
    if task == "cancel":
        st.done = None
        st.offer = "book"
        return (
            f"All right, {s['name']}, your appointment {_on(s['day'])} is cancelled. "
            "Would you like to book a new one?"
        )
    when = _when(_on(s["day"]), s["time"])
    st.done = f"We look forward to seeing you {when}."
    if task == "move":
        return (
            f"All set, {s['name']}. I've moved your appointment to {_when(s['day'], s['time'])}. "
            "Is there anything else I can help with?"
        )
    return (
        f"Thank you, {s['name']}. You're booked {s['reason']} {when}, and we'll call "
        f"{speak_digits(s['phone'])} if anything changes. Is there anything else I can help with?"
    )


def _receptionist(st: _State, said: _Said) -> str | None:
    if said.has(_EMERGENCY):
        return (
            "If this is a medical emergency, please hang up and call your local emergency "
            "number right away. For anything else, I'm happy to help."
        )
    if said.has(_CANCEL):
        task: str | None = "cancel"
    elif said.has(_MOVE) and st.task != "book":  # while booking, "a different day" is a correction
        task = "move"
    elif said.has(_BOOK) or (st.task is None and said.has(_BOOK_HINT)):
        task = "book"
    else:
        task = "book" if st.offered == "book" and _is_yes(said) else None
    if task is not None and task != st.task:
        if st.offered == "book" and task == "book":
            st.task = task  # keep the day and time the offer was made for
        else:
            st.start(task)
    new, notes = _reception_details(st, said)
    if said.has(_HOURS_ASKED):
        if st.task:
            return f"{_HOURS} {_reception_question(st, _missing(st)[0])}"
        st.offer = "book"
        return f"{_HOURS} Would you like to book an appointment?"
    if st.task is None:
        if said.has(_NO_INFO):
            return (
                "I'm sorry, I don't have that information in this offline demo. "
                f"I can help with {CAPABILITIES['receptionist']}."
            )
        # Details without a request ("my knee hurts", "tomorrow at 3"): offer the booking.
        day = _on(new["day"]) if "day" in new else None
        wish = " ".join(p for p in (new.get("reason"), _when(day, new.get("time"))) if p)
        if wish or notes:
            st.offer = "book"
            if not wish:
                return " ".join([*notes, "Would you like to book an appointment on another day?"])
            return " ".join([*notes, f"Would you like me to book an appointment {wish}?"])
        if "name" in new:
            return f"Nice to meet you, {new['name']}. How can I help you today?"
        return None
    missing = _missing(st)
    if not missing:
        return " ".join([*notes, _reception_confirm(st)])
    said_parts = notes + _reception_ack(new)
    if not new and not notes and said.asked == missing[0]:
        said_parts.append("Sorry, I didn't catch that.")
    elif task and not new and not notes:
        said_parts.append(
            {
                "book": "Sure, I can help you book an appointment.",
                "move": "Sure, I can move your appointment.",
                "cancel": "I can help you cancel your appointment.",
            }[task]
        )
    return " ".join([*said_parts, _reception_question(st, missing[0])])


def _missing(st: _State) -> list[str]:
    return [k for k in _NEEDS.get(st.task or "", ()) if k not in st.slots]


# ---- sales: a software company --------------------------------------------------------

_PLANS = (
    "We have three plans: Starter at 10 dollars per user per month, Team at 25 dollars, "
    "and Enterprise with custom pricing."
)
_FEATURES_TEXT = (
    "You get task boards, shared calendars, time tracking, reports, and integrations with "
    "the email and chat tools you already use."
)
_PRICING = _rx(
    r"pric|cost|how much|plans?\b|subscription|per month|per user|pay\b|"
    r"quote|licen[cs]"
)
_OBJECTION = _rx(r"expensive|too much|cheaper|discount|deal\b|budget|afford")
_FEATURES = _rx(
    r"feature|what does it do|what can it do|how does it work|integrat|"
    r"capabilit|functional|tell me (?:more|about)|product"
)
_TRIAL = _rx(r"trial|try (?:it|the)|test it|for free|free version")
_DEMO = _rx(r"demo|demonstration|walk ?through|show me|see it in action")
_NEEDS_TABLE = [
    (_rx(r"project"), "managing projects"),
    (_rx(r"tasks?\b|to do"), "tracking tasks"),
    (_rx(r"time track|timesheet|billable"), "time tracking"),
    (_rx(r"report|analytic|dashboard|metric"), "reporting"),
    (_rx(r"collaborat|shar|communicat|remote|team ?work"), "team collaboration"),
    (_rx(r"client|customer|crm\b|leads?\b"), "managing customers"),
    (_rx(r"schedul|calendar"), "scheduling"),
]
_PITCH = {
    "managing projects": "shared project boards with timelines",
    "tracking tasks": "task boards with owners and due dates",
    "time tracking": "built in time tracking and timesheets",
    "reporting": "live dashboards and reports you can export",
    "team collaboration": "comments, file sharing and shared calendars",
    "managing customers": "a simple client pipeline with notes and reminders",
    "scheduling": "shared calendars and scheduling",
}
_NEED_FILLER = re.compile(
    r"^(?:(?:yes|yeah|well|so|um|uh|mostly|mainly|mostly for|mainly for|for|we|i|want|need"
    r"|would like|to|use it|it|we need|we want)\s+)+"
)
_OFFER_NEXT = "Would you like to start a free trial, or see a demo?"


def _plan_for(size: int) -> str:
    who = "just you" if size == 1 else f"a team of {size}"
    if size > 100:
        return (
            f"For {who}, our Enterprise plan fits best, with volume pricing, single sign on "
            "and a dedicated account manager."
        )
    name, price = ("Starter", 10) if size <= 10 else ("Team", 25)
    if size == 1:
        return f"For {who}, the Starter plan at {price} dollars a month is a great fit."
    return (
        f"For {who}, I would suggest the {name} plan at {price} dollars per user per month, "
        f"so about {size * price} dollars a month."
    )


def _sales_next(st: _State) -> str:
    if "need" not in st.slots:
        return "What would you mainly use it for?"
    if "team" not in st.slots:
        return "How many people are on your team?"
    st.offer = "trial_or_demo"
    return _OFFER_NEXT


def _demo_step(st: _State, said: _Said) -> str:
    day, time = find_day(said), find_time(said)
    if day:
        st.slots["day"] = day
    if time:
        st.slots["time"] = time
    if "day" not in st.slots:
        return "Happy to set up a 30 minute demo. What day would suit you?"
    if "time" not in st.slots:
        return f"What time works best for you {_on(st.slots['day'])}?"
    when = _when(_on(st.slots["day"]), st.slots["time"])
    focus = st.slots.get("need", "what your team needs")
    st.task = None
    st.done = f"Talk to you at the demo {when}."
    return (
        f"You're booked for a 30 minute demo {when}, and we'll focus it on {focus}. "
        "Is there anything else I can help with?"
    )


def _sales(st: _State, said: _Said) -> str | None:
    size = find_count(said)
    need = _keyword_phrase(said, _NEEDS_TABLE)
    if need is None and said.asked == "need":
        need = _free_answer(said, _NEED_FILLER, 6)
    new_size = size is not None and st.slots.get("team") != str(size)
    new_need = need is not None and st.slots.get("need") != need
    if size is not None:
        st.slots["team"] = str(size)
    if need is not None:
        st.slots["need"] = need
    yes = _is_yes(said) and not _is_no(said)
    wants_demo = said.has(_DEMO) or (st.offered == "demo" and yes)
    wants_trial = said.has(_TRIAL) or (st.offered == "trial" and yes)
    if wants_demo and st.task != "demo":
        st.start("demo")
    if said.has(_OBJECTION):
        st.offer = "trial"
        return (
            "I understand. Paying yearly saves 20 percent, and the Starter plan is a low cost "
            "way to begin. Would a free 14 day trial help you decide?"
        )
    if said.has(_PRICING):
        if "team" in st.slots:
            st.offer = "trial_or_demo"
            return f"{_plan_for(int(st.slots['team']))} {_OFFER_NEXT}"
        return f"{_PLANS} How many people are on your team?"
    if said.has(_FEATURES):
        if "need" in st.slots:
            return f"{_FEATURES_TEXT} {_sales_next(st)}"
        return f"{_FEATURES_TEXT} What would you mainly use it for?"
    if st.task == "demo":
        return _demo_step(st, said)
    if wants_trial:
        if (st.offered == "trial" and yes) or st.offered == "trial_or_demo":
            st.done = "Enjoy your free trial."
            return (
                "Great, I've noted your trial request. You'll get a sign up link, and no "
                "credit card is needed. Is there anything else I can help with?"
            )
        st.offer = "trial"
        return "You can try any plan free for 14 days, no credit card needed. Shall I set that up?"
    if st.offered == "trial_or_demo" and yes:
        st.offer = "trial_or_demo"
        return "Great! Would you prefer the free trial, or a live demo with one of our specialists?"
    if new_size:
        return f"{_plan_for(int(st.slots['team']))} {_sales_next(st)}"
    if new_need and need is not None:
        pitch = _PITCH.get(need, "boards, reports and integrations that fit that well")
        return f"Great, for {need} you get {pitch}. {_sales_next(st)}"
    return None


# ---- callcenter: technical support ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Issue:
    key: str
    rx: re.Pattern[str]
    opening: str
    steps: tuple[str, ...]
    check: str  # the question after the last step


_ISSUES = (
    _Issue(
        "login",
        _rx(
            r"password|log ?in|logon|sign ?in|locked out|lock out|account|access|"
            r"user ?name|verification code"
        ),
        "I'm sorry you can't get in. Let's reset your password.",
        (
            "First, open the sign in page and choose Forgot password.",
            "Next, enter the email address on your account, then look in your inbox, and your "
            "spam folder, for the reset link.",
            "Now open that link, choose a new password with at least twelve characters, and "
            "sign in with it.",
        ),
        "Were you able to sign in?",
    ),
    _Issue(
        "internet",
        _rx(
            r"internet|wifi|wireless|network|router|modem|connect|offline|no signal|"
            r"online"
        ),
        "Let's get you back online.",
        (
            "First, unplug your router, wait thirty seconds, plug it back in, and give it two "
            "minutes to start up.",
            "Next, on your device, turn wifi off and on again, and reconnect to your network.",
            "If it still won't connect, choose forget this network, then join it again with "
            "your wifi password.",
        ),
        "Is it working now?",
    ),
    _Issue(
        "crash",
        _rx(
            r"crash|error|bug\b|freez|froze|stopped working|not responding|"
            r"keeps closing|shuts? down|quits?\b|broken"
        ),
        "Sorry about that, crashes are frustrating. Let's get it stable.",
        (
            "First, check for updates in the app settings or your app store, and install any "
            "that are waiting.",
            "Next, restart your device completely, then open the app again.",
            "If it still crashes, uninstall the app, restart, and install it fresh.",
        ),
        "Is it working now?",
    ),
    _Issue(
        "slow",
        _rx(r"slow|lag|sluggish|takes forever|taking forever|loading|hangs?\b|stuck"),
        "Sorry it's running slowly. Let's speed it up.",
        (
            "First, close any apps and browser tabs you're not using.",
            "Next, restart the app, or your whole computer if you can.",
            "Finally, check for updates in the settings menu and install any that are waiting.",
        ),
        "Is it working now?",
    ),
)
_ISSUE_BY_KEY = {issue.key: issue for issue in _ISSUES}
_STEP_PROMPT = "Let me know when you've done that."
_PROGRESS = _rx(
    r"done|did (?:it|that)|finished|next|ready|got it|i have|what now|"
    r"then what|go on|continue|found it|i see it|got the"
)
_FIXED = _rx(
    r"works|working|worked|fixed|solved|sorted|resolved|better|back online|"
    r"i am in\b|logged in|signed in|fine now|good now|that did it|perfect"
)
_NOT = _rx(r"not\b|no\b|nope|still|same|again|nothing|never")
_CANT_FIND = _rx(r"(?:can not|could not|do not|did not) (?:find|see)|where (?:is|do i)")
_NO_EMAIL = _rx(r"(?:no|not|never|did not|have not) (?:\w+ ){0,3}(?:email|mail|link)")
_BILLING = _rx(r"bill|charge|refund|invoice|payment|subscription")


def _support_next(st: _State, issue: _Issue, lead: str) -> str:
    if st.step >= len(issue.steps):
        return f"{lead} {issue.check}"
    st.step += 1
    prompt = _STEP_PROMPT if st.step < len(issue.steps) else issue.check
    return f"{lead} {issue.steps[st.step - 1]} {prompt}"


def _support(st: _State, said: _Said) -> str | None:
    current = _ISSUE_BY_KEY.get(st.task or "")
    negative = said.has(_NOT) or _is_no(said)
    fixed = not negative and (said.has(_FIXED) or (said.asked == "result" and _is_yes(said)))
    issue = next((i for i in _ISSUES if said.has(i.rx)), None)
    if issue is not None and issue is not current and not fixed:
        st.start(issue.key)
        return _support_next(st, issue, issue.opening)
    if current is None:
        if said.has(_BILLING):
            return (
                "Billing is handled by our accounts team, and in this offline demo I can only "
                f"help with {CAPABILITIES['callcenter']}."
            )
        return None
    if fixed:
        st.task = None
        return "Great, I'm glad it's working now. Is there anything else I can help with?"
    if current.key == "login" and said.has(_NO_EMAIL):
        return (
            "Reset emails can take a few minutes, so please wait a moment and check your spam "
            "or junk folder too. Let me know when you have it."
        )
    if said.has(_CANT_FIND):
        return f"No problem, take your time. {current.steps[st.step - 1]} {_STEP_PROMPT}"
    if negative and st.step >= len(current.steps):
        st.task = None
        ticket = _ticket(st)
        st.done = f"Your ticket number is {ticket}."
        return (
            f"I'm sorry that didn't fix it. I've opened ticket number {ticket}, and a "
            "specialist will follow up within one business day. "
            "Is there anything else I can help with?"
        )
    if negative:
        return _support_next(st, current, "Okay, let's try something else.")
    if said.has(_PROGRESS) or _is_yes(said):
        return _support_next(st, current, "Great.")
    return (
        f"Sorry, I didn't quite follow. {current.steps[st.step - 1]} "
        f"{_STEP_PROMPT[:-1]}, or tell me if it's working now."
    )


# ---- generic: small talk, and pointers to the real agents ----------------------------------


def _generic(st: _State, said: _Said) -> str | None:
    if said.has(_rx(r"weather|news|what time is it|the time\b|date|score")):
        return "I'm offline, so I can't look that up. In this demo mode I can only make small talk."
    if said.has(_rx(r"joke|funny")):
        return "Here's one. Why did the computer go to the doctor? Because it had a virus."
    if said.has(_rx(r"appoint|book|pric|password|internet|wifi")):
        return (
            "For that, try one of the other agents: the receptionist books appointments, the "
            "sales agent knows the plans, and the support agent fixes technical problems."
        )
    return None


HANDLERS: dict[str, Handler] = {
    "receptionist": _receptionist,
    "sales": _sales,
    "callcenter": _support,
    "generic": _generic,
}
INTROS = {
    "receptionist": (
        "Hello, thank you for calling the clinic. I'm the virtual receptionist, and I can "
        "book, move or cancel an appointment, or tell you our opening hours. "
        "How can I help you today?"
    ),
    "sales": (
        "Hi there, thanks for your interest in our software! I can tell you about our plans "
        "and pricing, our features, a free trial or a demo. What are you looking for?"
    ),
    "callcenter": (
        "Hello, you have reached technical support. I can help with sign in and password "
        "problems, a slow or crashing app, or internet and wifi trouble. "
        "What seems to be the problem?"
    ),
    "generic": (
        "Hello! I'm a voice assistant running in offline demo mode, with scripted replies "
        "instead of a language model. What would you like to talk about?"
    ),
}
CAPABILITIES = {
    "receptionist": "booking, moving or cancelling an appointment, and our opening hours",
    "sales": "our plans and pricing, features, a free trial or a demo",
    "callcenter": (
        "sign in and password problems, a slow or crashing app, and internet or wifi trouble"
    ),
    "generic": "simple small talk; the receptionist, sales and support agents can do much more",
}
_FAREWELL = {
    "receptionist": ("Thank you for calling the clinic.", "Take care, goodbye!"),
    "sales": ("Thanks for your time.", "Reach out whenever you're ready. Goodbye!"),
    "callcenter": ("Thank you for calling support.", "Have a great day, goodbye!"),
    "generic": ("It was nice talking with you.", "Goodbye!"),
}


def _goodbye(st: _State) -> str:
    first, last = _FAREWELL[st.persona]
    return " ".join(p for p in (first, st.done, last) if p)


def _fallback(st: _State) -> str:
    st.misses += 1
    caps = CAPABILITIES[st.persona]
    if st.misses == 1:
        return (
            "Sorry, I didn't quite get that. I'm running in offline demo mode, "
            f"so I can help with {caps}. What would you like to do?"
        )
    return (
        "I'm still not sure what you need, and my offline speech recognition may have "
        f"misheard. Could you say it in a few simple words? I can help with {caps}."
    )


def _respond(st: _State, raw: str, previous_reply: str) -> str:
    st.turns += 1
    said = read_turn(raw, previous_reply)
    caps, intro = CAPABILITIES[st.persona], INTROS[st.persona]
    misses, st.misses = st.misses, 0
    st.offered, st.offer = st.offer, None
    if not said.text:
        return "Sorry, I didn't catch that. Could you say it again?"
    if said.has(_REPEAT):
        return f"Sure. {previous_reply or intro}"
    if said.has(_BYE) or (said.asked == "more" and _is_no(said) and not _is_yes(said)):
        return _goodbye(st)
    if said.has(_IDENTITY):
        return (
            "I'm a virtual assistant running in offline demo mode: my replies are scripted, "
            f"not written by a language model. I can help with {caps}."
        )
    if said.has(_HUMAN):
        return f"I'm an offline demo, so there's nobody to transfer you to. I can help with {caps}."
    reply = HANDLERS[st.persona](st, said)
    if reply is not None:
        if st.turns == 1 and said.has(_GREETING):
            reply = "Hello! " + reply
        return reply
    if said.has(_THANKS):
        return "You're welcome! Is there anything else I can help with?"
    if said.has(_HOW_ARE_YOU):
        return "I'm doing well, thank you for asking. How can I help you today?"
    if said.has(_GREETING):
        return intro if st.turns == 1 else "Hello again! How can I help you?"
    if said.asked == "more" and _is_yes(said):
        return "Sure, what else can I help you with?"
    if st.offered and _is_no(said):
        return "No problem. Is there anything else I can help with?"
    if said.has(_HELP):
        return f"I can help with {caps}. What would you like to do?"
    st.misses = misses
    return _fallback(st)


def compose_reply(messages: Sequence[ChatMessage], persona: str) -> str:
    """The whole reply to the conversation's last user message. Pure and deterministic."""
    st = _State(persona if persona in HANDLERS else "generic")
    reply: str | None = None
    previous = ""
    for message in messages:
        if message.role == "assistant":
            previous = message.content  # what was really said wins over our replay
        elif message.role == "user":
            reply = _respond(st, message.content, previous)
            previous = reply
    return reply if reply is not None else INTROS[st.persona]


class ScriptedLLM:
    """LanguageModel that streams scripted, persona-aware replies word by word."""

    name = "scripted"

    async def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str]:
        try:
            words = compose_reply(messages, options.persona).split()
        except Exception as exc:  # a bug in a rule must end this turn, not the session
            log.exception("scripted reply failed")
            raise ProviderError("llm", "bad_output", f"scripted: {exc!r}") from exc
        # ~0.75 words per token, the usual rule of thumb for English.
        words = words[: max(1, options.max_tokens * 3 // 4)]
        for i, word in enumerate(words):
            # Yield to the loop between words so the reply streams like a model's.
            await asyncio.sleep(0)
            yield word if i == 0 else " " + word

    async def close(self) -> None:
        return None
