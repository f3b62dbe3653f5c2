"""The offline scripted agent: per-persona conversations, streaming, honesty."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.providers import scripted_llm
from media_server.providers.base import LanguageModel
from media_server.providers.scripted_llm import (
    ScriptedLLM,
    compose_reply,
    find_day,
    find_name,
    find_phone,
    find_time,
    read_turn,
    speak_digits,
)
from media_server.types import ChatMessage, ProviderError, ReplyOptions

MARKDOWN = set("*#_`[]<>|~")


class Conversation:
    """Drives ScriptedLLM the way turn.py does: history in, streamed pieces out."""

    def __init__(self, persona: str, max_tokens: int = 150) -> None:
        self.llm = ScriptedLLM()
        self.options = ReplyOptions(persona=persona, max_tokens=max_tokens)
        self.messages: list[ChatMessage] = [ChatMessage("system", "You are an agent.")]
        self.pieces: list[list[str]] = []

    async def say(self, text: str) -> str:
        self.messages.append(ChatMessage("user", text))
        pieces = [p async for p in self.llm.stream_reply(self.messages, self.options)]
        reply = "".join(pieces)
        self.pieces.append(pieces)
        self.messages.append(ChatMessage("assistant", reply))
        # Every reply: streamed, spoken-friendly, and never an echo of the caller.
        assert len(pieces) > 1, reply
        assert reply.strip() and reply != text
        assert not MARKDOWN & set(reply), reply
        assert "\n" not in reply
        return reply


def test_satisfies_protocol() -> None:
    llm = ScriptedLLM()
    assert isinstance(llm, LanguageModel)
    assert llm.name == "scripted"


async def test_receptionist_books_by_asking_for_each_missing_detail() -> None:
    c = Conversation("receptionist")
    intro = await c.say("hi")
    assert "receptionist" in intro and "clinic" in intro

    reply = await c.say("I'd like to book an appointment")
    assert "name" in reply.lower()

    reply = await c.say("my name is John Smith")
    assert "John Smith" in reply and "reason" in reply.lower()

    reply = await c.say("I have a sore throat")
    assert "sore throat" in reply and "what day" in reply.lower()

    reply = await c.say("next Tuesday please")
    assert "Tuesday" in reply and "what time" in reply.lower()

    reply = await c.say("at 3 pm")
    assert "3 pm" in reply and "phone number" in reply

    reply = await c.say("five five five one two three four five six seven")
    # The confirmation reads back everything it collected.
    for detail in ("John Smith", "sore throat", "Tuesday", "3 pm", "5 5 5, 1 2 3, 4 5 6 7"):
        assert detail in reply, (detail, reply)
    assert "anything else" in reply

    reply = await c.say("no, that's all. bye")
    assert "goodbye" in reply.lower() and "Tuesday at 3 pm" in reply


async def test_receptionist_uses_details_given_up_front() -> None:
    c = Conversation("receptionist")
    reply = await c.say("Hello, this is Maria Lopez, I need an appointment tomorrow at ten o'clock")
    assert "Maria Lopez" in reply and "tomorrow at 10 am" in reply.lower()
    assert "reason" in reply.lower()  # name, day and time are known: next is the reason
    reply = await c.say("a checkup")
    assert "checkup" in reply and "phone" in reply
    reply = await c.say("it's 555-987-6543")
    assert "booked for a checkup tomorrow at 10 am" in reply
    assert "5 5 5, 9 8 7, 6 5 4 3" in reply


async def test_receptionist_answers_hours_and_cancels() -> None:
    c = Conversation("receptionist")
    reply = await c.say("what are your opening hours?")
    assert "8 am to 6 pm" in reply and "Sunday" in reply
    reply = await c.say("I need to cancel my appointment")
    assert "name" in reply.lower()
    reply = await c.say("Anna Bell")
    assert "Anna Bell" in reply and "which day" in reply.lower()
    reply = await c.say("it was on friday")
    assert "Friday is cancelled" in reply
    reply = await c.say("no thanks")
    assert "anything else" in reply


async def test_hours_asked_with_the_last_missing_detail_answers_and_confirms() -> None:
    # This used to crash (IndexError on an empty "missing" list): one failed turn.
    c = Conversation("receptionist")
    await c.say("cancel my appointment on friday")
    reply = await c.say("Anna Bell, when are you open?")
    assert "8 am to 6 pm" in reply and "Anna Bell" in reply and "cancelled" in reply


async def test_receptionist_refuses_sunday_and_flags_emergencies() -> None:
    c = Conversation("receptionist")
    await c.say("book an appointment")
    await c.say("Peter Pan")
    await c.say("a flu shot")
    reply = await c.say("sunday")
    assert "closed on Sundays" in reply and "what day" in reply.lower()
    reply = await c.say("I have chest pain and can't breathe")
    assert "emergency" in reply


async def test_sales_prices_by_team_size_and_books_a_demo() -> None:
    c = Conversation("sales")
    intro = await c.say("hello")
    assert "pricing" in intro and "demo" in intro

    reply = await c.say("how much does it cost")
    assert "10 dollars" in reply and "how many people" in reply.lower()

    reply = await c.say("we are a team of twelve people")
    assert "team of 12" in reply and "Team plan" in reply and "300 dollars" in reply

    reply = await c.say("mostly for managing projects")
    assert "project" in reply and "trial" in reply and "demo" in reply

    reply = await c.say("a demo please")
    assert "what day" in reply.lower()
    reply = await c.say("thursday")
    assert "what time" in reply.lower() and "Thursday" in reply
    reply = await c.say("two pm")
    assert "demo on Thursday at 2 pm" in reply and "managing projects" in reply

    reply = await c.say("great, bye")
    assert "Goodbye" in reply


async def test_sales_handles_features_trial_and_objections() -> None:
    c = Conversation("sales")
    reply = await c.say("what features does it have")
    assert "time tracking" in reply and "use it for" in reply
    reply = await c.say("it's too expensive for us")
    assert "20 percent" in reply and "trial" in reply
    reply = await c.say("yes")
    assert "trial request" in reply
    big = await Conversation("sales").say("we have 250 users, what are the prices")
    assert "Enterprise" in big


async def test_callcenter_walks_through_password_reset() -> None:
    c = Conversation("callcenter")
    intro = await c.say("hi")
    assert "support" in intro and "password" in intro

    reply = await c.say("I forgot my password and I can't log in")
    assert "Forgot password" in reply and "Let me know" in reply

    reply = await c.say("ok done")
    assert "email address" in reply and "spam" in reply

    reply = await c.say("I didn't get the email")
    assert "few minutes" in reply  # advice, not the next step yet

    reply = await c.say("got it")
    assert "new password" in reply and "Were you able to sign in?" in reply

    reply = await c.say("yes")
    assert "glad" in reply and "anything else" in reply

    reply = await c.say("no")
    assert "goodbye" in reply.lower()


async def test_callcenter_escalates_when_steps_fail() -> None:
    c = Conversation("callcenter")
    reply = await c.say("my wifi keeps dropping")
    assert "router" in reply
    reply = await c.say("done")
    assert "turn wifi off and on" in reply
    reply = await c.say("still not working")
    assert "forget this network" in reply and "working now" in reply
    reply = await c.say("nope")
    assert "ticket number" in reply
    ticket = reply.split("ticket number ")[1].split(",")[0]
    assert len(ticket.split()) == 4  # four digits read one by one
    reply = await c.say("bye")
    assert ticket in reply  # the goodbye repeats it


async def test_fallback_is_honest_and_says_what_it_can_do() -> None:
    for persona, capability in [
        ("receptionist", "appointment"),
        ("sales", "pricing"),
        ("callcenter", "password"),
        ("generic", "small talk"),
    ]:
        c = Conversation(persona)
        reply = await c.say("purple elephants dance quietly")
        assert "offline demo mode" in reply and capability in reply, reply
        again = await c.say("zebra xylophone")
        assert again != reply and capability in again


async def test_generic_small_talk_and_identity() -> None:
    c = Conversation("generic")
    assert "offline demo mode" in await c.say("hello")
    assert "doing well" in await c.say("how are you?")
    assert "scripted" in await c.say("are you a robot?")
    assert "receptionist" in await c.say("can you book me an appointment")
    assert "Goodbye" in await c.say("goodbye")


async def test_repeat_request_repeats_the_last_reply() -> None:
    c = Conversation("callcenter")
    first = await c.say("my computer is very slow")
    again = await c.say("sorry, can you repeat that?")
    assert again == f"Sure. {first}"
    # ... but "a repeat prescription" is a reason for a visit, not a request to repeat.
    c = Conversation("receptionist")
    await c.say("book an appointment please")
    await c.say("Lena Park")
    reply = await c.say("I need a repeat prescription")
    assert "prescription" in reply and "what day" in reply.lower()


async def test_max_tokens_caps_the_reply() -> None:
    c = Conversation("receptionist", max_tokens=8)
    reply = await c.say("hi")
    assert len(reply.split()) == 6  # 8 tokens ~ 6 words
    assert reply.startswith("Hello, thank you")


async def test_no_user_message_gives_the_introduction() -> None:
    llm = ScriptedLLM()
    pieces = [
        p
        async for p in llm.stream_reply(
            [ChatMessage("system", "x")], ReplyOptions(persona="callcenter")
        )
    ]
    assert "technical support" in "".join(pieces)


def test_unknown_persona_behaves_as_generic() -> None:
    msgs = [ChatMessage("user", "hello")]
    assert compose_reply(msgs, "pirate") == compose_reply(msgs, "generic")


def test_deterministic() -> None:
    msgs = [
        ChatMessage("user", "my internet is down"),
        ChatMessage("assistant", "Let's get you back online. First, unplug your router."),
        ChatMessage("user", "still broken"),
    ]
    assert compose_reply(msgs, "callcenter") == compose_reply(list(msgs), "callcenter")


def test_real_history_wins_over_replay() -> None:
    # The previous reply in the history (not our own replay) decides what was asked:
    # after "What time ...?" a bare number is a time.
    msgs = [
        ChatMessage("user", "book an appointment on monday, my name is Ann Lee"),
        ChatMessage("assistant", "What time works best for you on Monday?"),
        ChatMessage("user", "four"),
    ]
    assert "4 pm" in compose_reply(msgs, "receptionist")


@pytest.mark.parametrize(
    ("text", "asked", "expected"),
    [
        ("at 3 pm", "", "3 pm"),
        ("three thirty p.m.", "", "3:30 pm"),
        ("ten o'clock", "", "10 am"),
        ("eleven in the morning", "", "11 am"),
        ("half past two", "", "2:30 pm"),
        ("tomorrow morning", "", "in the morning"),
        ("15:45", "", None),
        ("at 15:45", "", "3:45 pm"),
        ("nine", "time", "9 am"),
        ("nine", "", None),
        ("good morning", "", None),
    ],
)
def test_find_time(text: str, asked: str, expected: str | None) -> None:
    prev = "What time works best for you?" if asked == "time" else ""
    assert find_time(read_turn(text, prev)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("next tuesday", "next Tuesday"),
        ("on thursdays", "Thursday"),
        ("tomorrow afternoon", "tomorrow"),
        ("march 3rd", "March 3"),
        ("nothing here", None),
    ],
)
def test_find_day(text: str, expected: str | None) -> None:
    assert find_day(read_turn(text)) == expected


def test_find_name_and_phone() -> None:
    assert find_name(read_turn("hi my name is jane doe and I need help")) == "Jane Doe"
    assert find_name(read_turn("this is urgent")) is None
    assert find_name(read_turn("I'm having trouble")) is None
    assert find_name(read_turn("this is really urgent")) is None
    assert find_name(read_turn("my name is Molly")) == "Molly"
    assert find_name(read_turn("um, it's Bob", "May I have your full name, please?")) == "Bob"
    assert find_phone(read_turn("five five five oh one two three")) == "5550123"
    assert find_phone(read_turn("call 020 7946 0018")) == "02079460018"
    assert find_phone(read_turn("twenty five people")) is None
    assert speak_digits("5551234567") == "5 5 5, 1 2 3, 4 5 6 7"


_WORDS = (
    "hi book appointment cancel my name is at 3 pm tomorrow sunday five oh twenty hundred "
    "team of people price demo trial yes no done still not working password wifi bye "
    "o'clock half past morning 123456789 : ? ' this is i'm can't"
).split()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["receptionist", "sales", "callcenter", "generic"]),
    st.lists(
        st.one_of(
            st.text(max_size=40), st.lists(st.sampled_from(_WORDS), max_size=10).map(" ".join)
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_any_input_gets_a_speakable_reply(persona: str, turns: list[str]) -> None:
    messages: list[ChatMessage] = []
    for text in turns:
        messages.append(ChatMessage("user", text))
        reply = compose_reply(messages, persona)
        assert reply.strip() and not MARKDOWN & set(reply)
        messages.append(ChatMessage("assistant", reply))


async def test_rule_bug_becomes_provider_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> str:
        raise KeyError("slot")

    monkeypatch.setattr(scripted_llm, "plan", broken)
    stream = ScriptedLLM().stream_reply([ChatMessage("user", "hi")], ReplyOptions())
    with pytest.raises(ProviderError) as err:
        await anext(stream)
    assert (err.value.stage, err.value.kind) == ("llm", "bad_output")
