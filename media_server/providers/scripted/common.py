"""What every persona shares: conversation state, persona texts, goodbye and fallback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from media_server.providers.scripted.reading import Said


@dataclass
class State:
    persona: str
    turns: int = 0
    task: str | None = None  # what we are in the middle of (e.g. "book", "login")
    slots: dict[str, str] = field(default_factory=dict)
    step: int = 0  # support: how many troubleshooting steps were given
    offer: str | None = None  # what this reply offers, for a bare "yes" next turn
    offered: str | None = None  # what the previous reply offered
    done: str | None = None  # the last thing we confirmed, for the goodbye
    misses: int = 0  # consecutive turns not understood
    # What this turn's reply confirms doing ("book", "move", "cancel") and its
    # details: the scripted engine makes it real through the agent's tools.
    action: tuple[str, dict[str, str]] | None = None

    def start(self, task: str, keep: Sequence[str] = ("name", "phone", "team", "need")) -> None:
        self.task, self.step = task, 0
        self.slots = {k: v for k, v in self.slots.items() if k in keep}


Handler = Callable[[State, Said], str | None]


def when_phrase(day: str | None, time: str | None) -> str:
    if day and time:
        return f"{day} {time}" if time.startswith("in the") else f"{day} at {time}"
    return day or (time if not time or time.startswith("in the") else f"at {time}")


def on_phrase(day: str) -> str:
    return day if day.startswith(("tomorrow", "today", "the day", "next ")) else f"on {day}"


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


def goodbye(st: State) -> str:
    first, last = _FAREWELL[st.persona]
    return " ".join(p for p in (first, st.done, last) if p)


def fallback(st: State) -> str:
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
