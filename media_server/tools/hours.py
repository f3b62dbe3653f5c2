"""Opening hours and the slots they hold (pure; the clock is passed in).

An agent's ``opening_hours`` maps weekdays (``mon`` … ``sun``) to
``"HH:MM-HH:MM"``; a day it does not name is closed. Appointments start on
the slot grid (``slot_minutes`` from opening).
"""

from __future__ import annotations

import datetime as dt
import re

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# What the offline receptionist tells callers: Mon-Fri 8-18, Sat 9-13.
DEFAULT_HOURS: dict[str, str] = {**{d: "08:00-18:00" for d in WEEKDAYS[:5]}, "sat": "09:00-13:00"}
DEFAULT_SLOT_MINUTES = 30
_SPAN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def check_hours(hours: object, where: str) -> dict[str, str]:
    """``hours`` as a table of weekday spans, or ValueError naming the problem."""
    if not isinstance(hours, dict):
        raise ValueError(f'{where} must be a table like {{ mon = "09:00-17:00" }}')
    for day, span in hours.items():
        if day not in WEEKDAYS:
            raise ValueError(f"{where}: {day!r} is not one of {', '.join(WEEKDAYS)}")
        m = _SPAN.match(span) if isinstance(span, str) else None
        if m is None or (m[1], m[2]) >= (m[3], m[4]):
            raise ValueError(f'{where}.{day} must be "HH:MM-HH:MM", opening before closing')
    return dict(hours)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-12-08") from None


def parse_time(text: str) -> str:
    """``"9:00"``/``"09:00"`` as ``"09:00"``; ValueError otherwise."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a time like 10:30")
    return f"{int(m[1]):02d}:{m[2]}"


def slots(hours: dict[str, str], slot_minutes: int, day: dt.date) -> list[str]:
    """Every slot start on ``day`` ("HH:MM"), [] when closed."""
    span = hours.get(WEEKDAYS[day.weekday()])
    if span is None:
        return []
    opens, closes = span.split("-")
    start = _minutes(opens)
    end = _minutes(closes)
    return [
        f"{m // 60:02d}:{m % 60:02d}" for m in range(start, end - slot_minutes + 1, slot_minutes)
    ]


def spoken_day(day: dt.date) -> str:
    """``Tue 8 Dec``: how the page and the agent name a day."""
    return f"{day.strftime('%a')} {day.day} {day.strftime('%b')}"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)
