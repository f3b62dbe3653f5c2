"""Whisper's domain prompt: the tokens spell the documented text, and its
examples are not the bench's own utterances (else the bench measures words
the prompt lends, not what other callers get)."""

from __future__ import annotations

import re

from bench.asr_corpus import HELD_OUT_TURNS, UTTERANCES, normalize
from media_server.providers.whisper_model import (
    DOMAIN_PROMPT,
    DOMAIN_PROMPT_IDS,
    detokenize,
    model_dir,
)


def test_the_prompt_ids_spell_the_documented_prompt():
    vocab = (model_dir() / "vocabulary.txt").read_text().split("\n")
    assert detokenize([vocab[i] for i in DOMAIN_PROMPT_IDS]) == DOMAIN_PROMPT.strip()


def test_the_prompt_shares_no_name_date_time_or_number_with_the_bench():
    corpus = [text for _, text in UTTERANCES] + [said for _, _, said in HELD_OUT_TURNS]
    prompt = " ".join(normalize(DOMAIN_PROMPT))
    names = [
        m.group(1)
        for text in corpus
        if (m := re.search(r"(?:my name is|this is|it is) ([a-z]+ [a-z]+)$", text))
    ]
    names += [said for _, q, said in HELD_OUT_TURNS if "name" in q and " " in said]
    assert names and not [n for n in names if n.split()[-1] in prompt.split()]
    # Every digit string the bench says, and its dates and times, as words.
    for text in corpus:
        words = text.split()
        digits = [w for w in words if w in "zero one two three four five six seven eight nine"]
        if len(digits) >= 7:
            assert " ".join(digits[:3]) not in prompt and " ".join(digits[-4:]) not in prompt
    for spoken in ("the eighth", "the twelfth", "ten thirty", "three thirty", "nine am"):
        assert spoken not in prompt
