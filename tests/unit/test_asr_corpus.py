"""bench.offline_asr scores words, not spellings: both sides normalised the same way."""

from __future__ import annotations

import pytest

from bench.asr_corpus import HELD_OUT_TURNS, UTTERANCES, normalize, word_errors


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        (
            "My number is 415-555-0123.",
            "my number is four one five five five five zero one two three",
        ),
        ("at 3:30 in the afternoon", "at three thirty in the afternoon"),
        ("at 3.30 pm", "at three thirty pm"),
        ("Is 9 a.m. available?", "is nine am available"),
        ("Friday the 12th", "friday the twelfth"),
        ("about 20 people", "about twenty people"),
        ("I can't log in, it's fine", "i can not log in it is fine"),
        (
            "My Wi-Fi is down, I cannot log into my e-mail.",
            "my wifi is down i can not log in to my email",
        ),
        ("a checkup or a check-up", "a check up or a check up"),
    ],
)
def test_written_forms_score_as_the_words_spoken(written, spoken):
    assert word_errors(spoken, written) == (0, len(spoken.split()))


def test_word_errors_counts_substitutions_insertions_and_deletions():
    assert word_errors(
        "i would like to book an appointment", "I would like to welcome an appointment"
    ) == (1, 7)
    assert word_errors("next tuesday please", "next to the date, please") == (3, 3)
    assert word_errors("hello there", "") == (2, 2)


def test_the_corpus_is_written_as_spoken():
    for _, text in UTTERANCES:
        assert normalize(text) == text.split(), text
    for _, _, said in HELD_OUT_TURNS:
        assert normalize(said) == said.split(), said
