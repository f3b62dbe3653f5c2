"""The receptionist persona: a medical clinic that books, moves and cancels visits."""

from __future__ import annotations

import re

from media_server.providers.scripted.common import CAPABILITIES, State, on_phrase, when_phrase
from media_server.providers.scripted.details import (
    find_day,
    find_name,
    find_phone,
    find_time,
    free_answer,
    speak_digits,
)
from media_server.providers.scripted.reading import Said, is_yes, stems


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


_HOURS = (
    "We're open Monday to Friday from 8 am to 6 pm, and on Saturday from 9 am to 1 pm. "
    "We're closed on Sundays."
)
_EMERGENCY = stems(
    r"emergenc|chest pain|can not breathe|(?:trouble|difficulty) breathing|"
    r"unconscious|heart attack|stroke|overdose|suicid|"
    r"(?:severe|heavy) bleeding|bleeding (?:a lot|heavily|badly)"
)
_CANCEL = stems(r"cancel|call off|can not make it|will not make it")
_MOVE = stems(
    r"reschedul|re schedul|move (?:my|the|it)|"
    r"change (?:my|the) (?:appoint|time|day|date)|"
    r"different (?:day|time|date)|postpone|push (?:it|my) back"
)
_BOOK = stems(
    r"book|make an? (?:new )?appoint|new appoint|"
    r"(?:set up|schedule) an? appoint"
)
# Weaker signs of wanting an appointment: they start a booking only when nothing else is going on.
_BOOK_HINT = stems(
    r"appoint|a pointment|schedul|see (?:a|the|my) doctor|see someone|"
    r"checkup|check up|visit|come in|consultation"
)
_HOURS_ASKED = stems(r"hours|open|clos|when are you")
_NO_INFO = stems(
    r"address|where are you|located|location|direction|parking|insurance|"
    r"how much|cost|price|results"
)
_REASONS = [
    (stems(r"checkup|check up|physical|routine|annual"), "for a checkup"),
    (stems(r"fever|temperature"), "for a fever"),
    (stems(r"cough"), "for a cough"),
    (stems(r"sore throat|throat"), "for a sore throat"),
    (stems(r"flu\b|cold\b"), "for cold or flu symptoms"),
    (stems(r"headache|migraine"), "for headaches"),
    (stems(r"rash|skin|itch"), "for a skin problem"),
    (stems(r"allerg"), "for allergies"),
    (stems(r"vaccin|shot\b|jab\b|immuni"), "for a vaccination"),
    (stems(r"blood (?:test|work)|lab\b|labs\b"), "for a blood test"),
    (stems(r"prescription|refill|medication|medicine"), "for a prescription"),
    (stems(r"follow ?up"), "for a follow up"),
    (stems(r"(back|knee|neck|shoulder|stomach|ear|tooth|joint|foot|hip) (?:pain|ache|hurts)"), ""),
    (stems(r"pain|hurts|ache"), "for pain"),
    (stems(r"injur|sprain|broke|fell\b"), "for an injury"),
    (stems(r"stomach|nause|vomit"), "for a stomach problem"),
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


def _reason(said: Said) -> str | None:
    for rx, phrase in _REASONS:
        if m := rx.search(said.text):
            return phrase or f"for {m.group(1)} pain"  # "my knee hurts" -> "for knee pain"
    if said.asked == "reason" and (answer := free_answer(said, _REASON_FILLER)):
        return f"about {answer}"
    return None


def _reception_question(st: State, key: str) -> str:
    if key == "day":
        return _ASK_DAY[st.task or "book"]
    if key == "time":
        day = st.slots.get("day")
        on_day = f" {on_phrase(day)}" if day else ""
        return f"What time works best for you{on_day}? We're open from 8 am to 6 pm."
    return {
        "name": "May I have your full name, please?",
        "reason": "What is the reason for your visit?",
        "phone": "And what is the best phone number to reach you?",
    }[key]


def _reception_details(st: State, said: Said) -> tuple[dict[str, str], list[str]]:
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
    if when := when_phrase(new.get("day"), new.get("time")):
        parts.append(f"{_sentence(when)}, got it.")
    if "phone" in new:
        parts.append(f"I have your number as {speak_digits(new['phone'])}.")
    return parts


def _reception_confirm(st: State) -> str:
    s, task = st.slots, st.task
    st.task = None
    st.action = (task or "book", dict(s))
    if task == "cancel":
        st.done = None
        st.offer = "book"
        return (
            f"All right, {s['name']}, your appointment {on_phrase(s['day'])} is cancelled. "
            "Would you like to book a new one?"
        )
    when = when_phrase(on_phrase(s["day"]), s["time"])
    st.done = f"We look forward to seeing you {when}."
    if task == "move":
        return (
            f"All set, {s['name']}. I've moved your appointment to "
            f"{when_phrase(s['day'], s['time'])}. Is there anything else I can help with?"
        )
    return (
        f"Thank you, {s['name']}. You're booked {s['reason']} {when}, and we'll call "
        f"{speak_digits(s['phone'])} if anything changes. Is there anything else I can help with?"
    )


def reply(st: State, said: Said) -> str | None:
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
        task = "book" if st.offered == "book" and is_yes(said) else None
    if task is not None and task != st.task:
        if st.offered == "book" and task == "book":
            st.task = task  # keep the day and time the offer was made for
        else:
            st.start(task)
    new, notes = _reception_details(st, said)
    if said.has(_HOURS_ASKED):
        if st.task:
            missing = _missing(st)
            if not missing:  # this turn gave the last detail: answer, then confirm
                return " ".join([_HOURS, *notes, _reception_confirm(st)])
            return f"{_HOURS} {_reception_question(st, missing[0])}"
        st.offer = "book"
        return f"{_HOURS} Would you like to book an appointment?"
    if st.task is None:
        if said.has(_NO_INFO):
            return (
                "I'm sorry, I don't have that information in this offline demo. "
                f"I can help with {CAPABILITIES['receptionist']}."
            )
        # Details without a request ("my knee hurts", "tomorrow at 3"): offer the booking.
        day = on_phrase(new["day"]) if "day" in new else None
        wish = " ".join(p for p in (new.get("reason"), when_phrase(day, new.get("time"))) if p)
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


def _missing(st: State) -> list[str]:
    return [k for k in _NEEDS.get(st.task or "", ()) if k not in st.slots]
