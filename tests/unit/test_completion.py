"""The lexical reading of a transcript: finished sentence or not."""

from __future__ import annotations

import pytest

from media_server.listening.completion import completion

COMPLETE = [
    "What time do you open tomorrow?",
    "what time do you open tomorrow",  # pocketsphinx: no punctuation
    "I'd like to book an appointment for next Tuesday.",
    "Can you help me reset my password",
    "Yes.",
    "no thanks",
    "Yes I do",
    "I think so",
    "That's all",
    "I like that",
    "What are you looking for",
    "Who should I talk to",
    "Please turn it off",
    "My number is 415 555 0123",
    "my number is four one five five five five zero one two three",
    "If I book today, do I get a discount?",
    "Thank you, goodbye!",
    "I forgot my password and cannot log in",
    "How much does the premium plan cost",
]
INCOMPLETE = [
    "I'd like to book an appointment for",
    "I'd like to book an appointment for...",
    "and",
    "So",
    "um",
    "I was thinking, uh",
    "My name is",
    "my number is",
    "My number is 415 555",
    "my number is four one five",
    "My name is spelled J O",
    "I need a",
    "I want to",
    "I was wondering if",
    "If I book today",
    "Could you",
    "The problem is that the",
    "I'm calling about my",
    "We'd like",
    "Tomorrow I need to pick up the,",
    "I'm looking for, you know",
]


@pytest.mark.parametrize("text", COMPLETE)
def test_finished_turns_read_complete(text: str):
    assert completion(text).verdict == "complete", completion(text)


@pytest.mark.parametrize("text", INCOMPLETE)
def test_unfinished_turns_read_incomplete(text: str):
    assert completion(text).verdict == "incomplete", completion(text)


@pytest.mark.parametrize("text", ["", "   ", "...", "Thursday", "pizza"])
def test_nothing_or_one_plain_word_is_unsure(text: str):
    assert completion(text).verdict == "unsure"


@pytest.mark.parametrize(
    ("language", "unfinished", "finished"),
    [
        ("es", "Quiero reservar una mesa para", "Quiero reservar una mesa para mañana."),
        ("fr", "Je voudrais un rendez-vous pour", "Je voudrais un rendez-vous demain."),
        ("de", "Ich möchte einen Termin für", "Ich möchte einen Termin am Dienstag."),
    ],
)
def test_other_languages_read_their_own_function_words(language, unfinished, finished):
    assert completion(unfinished, language).verdict == "incomplete"
    assert completion(finished, language).verdict == "complete"


def test_a_language_without_rules_is_always_unsure():
    assert completion("Ninapenda kuweka miadi kwa", "sw").verdict == "unsure"
    assert completion("I'd like to book an appointment for", "sw-KE").verdict == "unsure"


def test_the_reason_says_which_rule_decided():
    assert "for" in completion("a table for").reason
    assert "digits" in completion("my card number is 4242").reason
