"""The moves every persona shares, and the whole reply to a conversation."""

from __future__ import annotations

from collections.abc import Sequence

from media_server.providers.scripted import generic, receptionist, sales, support
from media_server.providers.scripted.common import (
    CAPABILITIES,
    INTROS,
    Handler,
    State,
    fallback,
    goodbye,
)
from media_server.providers.scripted.details import find_day, find_time
from media_server.providers.scripted.fuzzy import repair
from media_server.providers.scripted.reading import is_no, is_yes, read_turn, stems
from media_server.types import ChatMessage

_GREETING = stems(r"(?:hi|hello|hey|hiya|howdy)\b|good (?:morning|afternoon|evening)")
_THANKS = stems(r"thank|thanks|cheers|appreciate")
_BYE = stems(
    r"bye|goodbye|good bye|see you|that is all|that is it for|nothing else|"
    r"have a (?:good|nice|great) (?:day|one)|hang up"
)
_HOW_ARE_YOU = stems(r"how are you|how is it going|how do you do")
# Not a bare "repeat": "a repeat prescription" is a reason for a visit.
_REPEAT = stems(
    r"(?:can you|could you|please) repeat|repeat (?:that|it)\b|say (?:that|it) again|"
    r"pardon|come again|what did you say"
)
_IDENTITY = stems(
    r"are you (?:a |an )?(?:robot|bot|human|real|person|machine|computer|ai\b)|"
    r"who are you\b|what are you\b|who am i (?:talking|speaking) to|your name"
)
_HUMAN = stems(
    r"real person|a human|operator|representative|"
    r"(?:speak|talk) (?:to|with) (?:someone|somebody|a person)"
)
_HELP = stems(r"what can you do|what do you do|how can you help|options|help me")


HANDLERS: dict[str, Handler] = {
    "receptionist": receptionist.reply,
    "sales": sales.reply,
    "callcenter": support.reply,
    "generic": generic.reply,
}


def _respond(st: State, raw: str, previous_reply: str) -> str:
    st.turns += 1
    st.action = None
    said = read_turn(repair(raw, st.persona), previous_reply)
    caps, intro = CAPABILITIES[st.persona], INTROS[st.persona]
    misses, st.misses = st.misses, 0
    st.offered, st.offer = st.offer, None
    if not said.text:
        return "Sorry, I didn't catch that. Could you say it again?"
    if said.has(_REPEAT):
        return f"Sure. {previous_reply or intro}"
    # "See you next Wednesday" answers "What day would suit you?": not a goodbye.
    answers = said.asked in ("day", "time") and (find_day(said) or find_time(said))
    if (said.has(_BYE) and not answers) or (
        said.asked == "more" and is_no(said) and not is_yes(said)
    ):
        return goodbye(st)
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
    if said.asked == "more" and is_yes(said):
        return "Sure, what else can I help you with?"
    if st.offered and is_no(said):
        return "No problem. Is there anything else I can help with?"
    if said.has(_HELP):
        return f"I can help with {caps}. What would you like to do?"
    st.misses = misses
    return fallback(st, said.asked)


def compose_reply(messages: Sequence[ChatMessage], persona: str) -> str:
    """The whole reply to the conversation's last user message. Pure and deterministic."""
    return compose(messages, persona)[0]


def compose(messages: Sequence[ChatMessage], persona: str) -> tuple[str, State]:
    """The reply and the state it leaves (``state.action``: what it confirms doing)."""
    st = State(persona if persona in HANDLERS else "generic")
    reply: str | None = None
    previous = ""
    for message in messages:
        if message.role == "assistant" and message.tool_calls:
            continue  # a tool round, not words anyone heard
        if message.role == "assistant":
            previous = message.content  # what was really said wins over our replay
        elif message.role == "user":
            reply = _respond(st, message.content, previous)
            previous = reply
    return (reply if reply is not None else INTROS[st.persona]), st
