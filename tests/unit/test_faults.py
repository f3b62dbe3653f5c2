"""Retry, error budget and the words a person reads about failures."""

from __future__ import annotations

import pytest

from media_server import faults
from media_server.types import ProviderError

STAGES = ("stt", "llm", "tts")
KINDS = ("auth", "invalid", "quota", "rate_limited", "unavailable", "timeout", "bad_output")


@pytest.mark.parametrize("kind", KINDS)
def test_one_retry_and_only_for_what_a_retry_can_fix(kind: str):
    err = ProviderError("llm", kind)
    first = faults.retry_delay(err, attempt=1)
    if kind in ("rate_limited", "unavailable", "timeout"):
        assert first == faults.DEFAULT_RETRY_DELAY_S
    else:
        assert first is None
    assert faults.retry_delay(err, attempt=2) is None


def test_retry_after_is_honoured_up_to_the_cap():
    assert faults.retry_delay(ProviderError("tts", "rate_limited", retry_after=0.7), 1) == 0.7
    capped = faults.retry_delay(ProviderError("tts", "rate_limited", retry_after=30), 1)
    assert capped == faults.RETRY_AFTER_CAP_S


def test_the_budget_counts_consecutive_failures_per_stage():
    budget = faults.ErrorBudget(limit=3)
    for _ in range(2):
        budget.record("llm", ProviderError("llm", "unavailable"))
    budget.record("llm", None)  # a success resets the count
    budget.record("tts", ProviderError("tts", "timeout"))
    budget.record("llm", ProviderError("llm", "unavailable"))
    budget.record("llm", ProviderError("llm", "unavailable"))
    assert budget.exhausted is None and budget.failures("llm") == 2
    third = ProviderError("llm", "timeout")
    budget.record("llm", third)
    assert budget.exhausted is third
    budget.record("stt", ProviderError("stt", "auth"))
    assert budget.exhausted is third  # the first reason stays


@pytest.mark.parametrize("kind", ["auth", "quota"])
def test_an_error_no_retry_can_fix_exhausts_the_budget_at_once(kind: str):
    budget = faults.ErrorBudget(limit=5)
    err = ProviderError("stt", kind)
    budget.record("stt", err)
    assert budget.exhausted is err


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_words_name_the_service_and_hide_the_internals(stage: str, kind: str):
    err = ProviderError(stage, kind, "HTTP 500 from https://api.example/v1 key=sk-secret")
    for text in (faults.user_message(err), faults.session_ended_message(err)):
        assert faults.SERVICE_NAMES[stage] in text
        assert "sk-" not in text and "http" not in text.lower() and "_" not in text
    assert "ended" in faults.session_ended_message(err)
