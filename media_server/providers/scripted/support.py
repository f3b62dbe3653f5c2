"""The callcenter persona: technical support that walks through fixes step by step."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from media_server.providers.scripted.common import CAPABILITIES, State
from media_server.providers.scripted.reading import Said, is_no, is_yes, stems


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
        stems(
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
        stems(
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
        stems(
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
        stems(r"slow|lag|sluggish|takes forever|taking forever|loading|hangs?\b|stuck"),
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
_PROGRESS = stems(
    r"done|did (?:it|that)|finished|next|ready|got it|i have|what now|"
    r"then what|go on|continue|found it|i see it|got the"
)
_FIXED = stems(
    r"works|working|worked|fixed|solved|sorted|resolved|better|back online|"
    r"i am in\b|logged in|signed in|fine now|good now|that did it|perfect"
)
_NOT = stems(r"not\b|no\b|nope|still|same|again|nothing|never")
_CANT_FIND = stems(r"(?:can not|could not|do not|did not) (?:find|see)|where (?:is|do i)")
_NO_EMAIL = stems(r"(?:no|not|never|did not|have not) (?:\w+ ){0,3}(?:email|mail|link)")
_BILLING = stems(r"bill|charge|refund|invoice|payment|subscription")


def _ticket(st: State) -> str:
    # Deterministic, so a test can replay a conversation and hear the same number.
    return " ".join(str(zlib.crc32(f"{st.task}{st.turns}".encode()) % 9000 + 1000))


def _support_next(st: State, issue: _Issue, lead: str) -> str:
    if st.step >= len(issue.steps):
        return f"{lead} {issue.check}"
    st.step += 1
    prompt = _STEP_PROMPT if st.step < len(issue.steps) else issue.check
    return f"{lead} {issue.steps[st.step - 1]} {prompt}"


def reply(st: State, said: Said) -> str | None:
    current = _ISSUE_BY_KEY.get(st.task or "")
    negative = said.has(_NOT) or is_no(said)
    fixed = not negative and (said.has(_FIXED) or (said.asked == "result" and is_yes(said)))
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
        st.action = ("ticket", {"issue": current.key, "spoken": ticket, **st.slots})
        return (
            f"I'm sorry that didn't fix it. I've opened ticket number {ticket}, and a "
            "specialist will follow up within one business day. "
            "Is there anything else I can help with?"
        )
    if negative:
        return _support_next(st, current, "Okay, let's try something else.")
    if said.has(_PROGRESS) or is_yes(said):
        return _support_next(st, current, "Great.")
    return (
        f"Sorry, I didn't quite follow. {current.steps[st.step - 1]} "
        f"{_STEP_PROMPT[:-1]}, or tell me if it's working now."
    )
