"""Rough transcripts the scripted agents forgive (fuzzy.py), and the re-prompt."""

from __future__ import annotations

import pytest

from media_server.providers.scripted.compose import compose_reply
from media_server.providers.scripted.details import find_day, find_phone, find_time
from media_server.providers.scripted.fuzzy import repair, reprompt
from media_server.providers.scripted.reading import read_turn
from media_server.types import ChatMessage


def said(raw: str, persona: str = "receptionist", asked: str = ""):
    return read_turn(repair(raw, persona), asked)


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("Can I come in on the eighth?", "the 8th"),
        ("Can I come in on the 8?", "the 8th"),
        ("how about the twenty first", "the 21th"),  # find_day's own wording
        ("June twenty first please", "June 21"),
        ("next Tuesday, please!", "next Tuesday"),
        ("maybe on wensday", "Wednesday"),
    ],
)
def test_dates(raw, day):
    assert find_day(said(raw)) == day


def test_ordinals_stay_words_where_they_are_not_dates():
    assert repair("the first available appointment", "receptionist") == (
        "the first available appointment"
    )
    assert find_time(said("on the 8 am slot")) == "8 am"


@pytest.mark.parametrize(
    ("raw", "time"),
    [
        ("at 3.30 in the afternoon.", "3:30 pm"),
        ("around 10-30 in the morning.", "10:30 am"),
        ("Is 9 a.m. available?", "9 am"),
    ],
)
def test_times(raw, time):
    assert find_time(said(raw)) == time


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("My number is 415-555-0123.", "4155550123"),
        ("My number is 41, 5, 5 and 5, 0, 1, 2, 3.", "415550123"),
        ("You can reach me at 65022 to 9876.", "6502229876"),
        ("it's 312 for 55 oh 789", "3124550789"),
    ],
)
def test_phone_digits(raw, digits):
    assert find_phone(said(raw)) == digits


@pytest.mark.parametrize(
    ("persona", "raw", "fixed"),
    [
        ("callcenter", "My wife is not working.", "my wifi is not working."),
        ("sales", "How much does the pro plan cast?", "how much does the pro plan cost?"),
        ("sales", "I would like to see a memo.", "i would like to see a demo."),
        ("callcenter", "the app keeps crushing", "the app keeps crashing"),
    ],
)
def test_keywords_a_sound_away_are_read_as_the_persona_s_words(persona, raw, fixed):
    assert repair(raw, persona) == fixed


def test_words_are_only_corrected_towards_the_persona_s_own_words():
    assert repair("my wife has a fever", "receptionist") == "my wife has a fever"
    assert repair("most teams like it", "sales") == "most teams like it"  # not "cost"
    assert repair("it stopped working", "callcenter") == "it stopped working"  # not "morning"


def test_the_agents_answer_the_repaired_turn():
    reply = compose_reply([ChatMessage("user", "My wife is not working.")], "callcenter")
    assert "router" in reply, reply
    reply = compose_reply([ChatMessage("user", "How much does it cast?")], "sales")
    assert "$" in reply or "plan" in reply.lower(), reply


def test_the_reprompt_says_what_it_can_do_and_never_repeats_the_apology():
    turns = [ChatMessage("user", "blue elephants dance")] * 1
    first = compose_reply(turns, "receptionist")
    second = compose_reply(
        [*turns, ChatMessage("assistant", first), ChatMessage("user", "purple monkey")],
        "receptionist",
    )
    assert "opening hours" in first and "For example" in first
    assert "didn't" not in second and "book an appointment" in second
    assert first != second


def test_a_slot_reprompt_says_how_to_give_that_detail():
    text = reprompt("receptionist", "booking", "day", 1)
    assert "next Tuesday" in text and "the 8th" in text
    assert reprompt("receptionist", "booking", "day", 2).startswith("I still need the day")


@pytest.mark.parametrize(
    ("raw", "time"),
    [
        ("To the afternoon.", "2 pm"),
        ("Tune in the afternoon.", "2 pm"),
        ("Um, too in the morning?", "2 am"),
        ("ate in the morning", "8 am"),
        ("For in the evening.", "4 pm"),
        ("Around 10 end the morning.", "10 am"),
    ],
)
def test_a_number_heard_as_a_word_before_a_part_of_the_day(raw, time):
    assert find_time(said(raw, asked="What time would you like?")) == time


def test_words_like_numbers_stay_words_where_they_are_not_a_time():
    for raw in ("can you move it to the afternoon", "for the afternoon, please"):
        assert repair(raw, "receptionist") == raw
    assert find_time(said("can you move it to the afternoon")) != "2 pm"


def test_see_you_with_a_day_answers_the_day_question_and_is_not_a_goodbye():
    booking = [
        ChatMessage("user", "I want to book an appointment"),
        ChatMessage("assistant", "What day would you like to come in?"),
    ]
    reply = compose_reply(
        [*booking, ChatMessage("user", "See you next Wednesday.")], "receptionist"
    )
    assert "Next Wednesday" in reply and "goodbye" not in reply.lower(), reply
    reply = compose_reply([*booking, ChatMessage("user", "OK, see you, bye.")], "receptionist")
    assert "goodbye" in reply.lower(), reply
