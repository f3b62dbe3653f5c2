"""The generic persona: small talk, and pointers to the real agents."""

from __future__ import annotations

from media_server.providers.scripted.common import State
from media_server.providers.scripted.reading import Said, stems


def reply(st: State, said: Said) -> str | None:
    if said.has(stems(r"weather|news|what time is it|the time\b|date|score")):
        return "I'm offline, so I can't look that up. In this demo mode I can only make small talk."
    if said.has(stems(r"joke|funny")):
        return "Here's one. Why did the computer go to the doctor? Because it had a virus."
    if said.has(stems(r"appoint|book|pric|password|internet|wifi")):
        return (
            "For that, try one of the other agents: the receptionist books appointments, the "
            "sales agent knows the plans, and the support agent fixes technical problems."
        )
    return None
