"""The sales persona: a software company that explains plans and books demos."""

from __future__ import annotations

import re

from media_server.providers.scripted.common import State, on_phrase, when_phrase
from media_server.providers.scripted.details import (
    find_count,
    find_day,
    find_time,
    free_answer,
    keyword_phrase,
)
from media_server.providers.scripted.reading import Said, is_no, is_yes, stems

_PLANS = (
    "We have three plans: Starter at 10 dollars per user per month, Team at 25 dollars, "
    "and Enterprise with custom pricing."
)
_FEATURES_TEXT = (
    "You get task boards, shared calendars, time tracking, reports, and integrations with "
    "the email and chat tools you already use."
)
_PRICING = stems(
    r"pric|cost|how much|plans?\b|subscription|per month|per user|pay\b|"
    r"quote|licen[cs]"
)
_OBJECTION = stems(r"expensive|too much|cheaper|discount|deal\b|budget|afford")
_FEATURES = stems(
    r"feature|what does it do|what can it do|how does it work|integrat|"
    r"capabilit|functional|tell me (?:more|about)|product"
)
_TRIAL = stems(r"trial|try (?:it|the)|test it|for free|free version")
_DEMO = stems(r"demo|demonstration|walk ?through|show me|see it in action")
_NEEDS_TABLE = [
    (stems(r"project"), "managing projects"),
    (stems(r"tasks?\b|to do"), "tracking tasks"),
    (stems(r"time track|timesheet|billable"), "time tracking"),
    (stems(r"report|analytic|dashboard|metric"), "reporting"),
    (stems(r"collaborat|shar|communicat|remote|team ?work"), "team collaboration"),
    (stems(r"client|customer|crm\b|leads?\b"), "managing customers"),
    (stems(r"schedul|calendar"), "scheduling"),
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


def _sales_next(st: State) -> str:
    if "need" not in st.slots:
        return "What would you mainly use it for?"
    if "team" not in st.slots:
        return "How many people are on your team?"
    st.offer = "trial_or_demo"
    return _OFFER_NEXT


def _demo_step(st: State, said: Said) -> str:
    day, time = find_day(said), find_time(said)
    if day:
        st.slots["day"] = day
    if time:
        st.slots["time"] = time
    if "day" not in st.slots:
        return "Happy to set up a 30 minute demo. What day would suit you?"
    if "time" not in st.slots:
        return f"What time works best for you {on_phrase(st.slots['day'])}?"
    when = when_phrase(on_phrase(st.slots["day"]), st.slots["time"])
    focus = st.slots.get("need", "what your team needs")
    st.task = None
    st.done = f"Talk to you at the demo {when}."
    st.action = ("demo", dict(st.slots))
    return (
        f"You're booked for a 30 minute demo {when}, and we'll focus it on {focus}. "
        "Is there anything else I can help with?"
    )


def reply(st: State, said: Said) -> str | None:
    size = find_count(said)
    need = keyword_phrase(said, _NEEDS_TABLE)
    if need is None and said.asked == "need":
        need = free_answer(said, _NEED_FILLER, 6)
    new_size = size is not None and st.slots.get("team") != str(size)
    new_need = need is not None and st.slots.get("need") != need
    if size is not None:
        st.slots["team"] = str(size)
    if need is not None:
        st.slots["need"] = need
    yes = is_yes(said) and not is_no(said)
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
