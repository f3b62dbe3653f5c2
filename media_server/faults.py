"""What happens when a provider fails, and what the person is told.

- Retry: at most one retry of a stage, only for errors a retry can fix,
  after the provider's ``Retry-After`` (capped) or a short default. Whether
  a retry is still allowed (nothing of the reply heard yet) is the turn's call.
- Fallback: a streaming transcript that fails is decoded again from the
  whole utterance (turn.py); a turn that fails ends in one ``error`` event
  and the next turn starts clean.
- Fallback: an engine that fails before its first item hands the request to
  the next engine of its chain (providers/fallback.py, deadlines.first_item);
  the person reads ``fallback_message`` once a call per stage.
- Error budget: consecutive failed turns per stage, reset by a success. At
  ``provider_error_limit``, or at once on an error no retry can fix within a
  session (a rejected key, an exhausted quota), the session ends after the
  failing turn, with one ``error`` saying why.
- Wording: every sentence a person reads about a failure is written here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from media_server import protocol
from media_server.types import ProviderError, Stage

if TYPE_CHECKING:
    from media_server.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_AFTER_CAP_S = 2.0  # never keep a person waiting longer than this for a retry
DEFAULT_RETRY_DELAY_S = 0.25
# Errors that no number of retries will fix within a session: the key is
# wrong or the account is out of credit. They end the session at once.
FATAL_ERROR_KINDS = frozenset({"auth", "quota"})

SERVICE_NAMES: dict[Stage, str] = {
    "stt": "speech recognition",
    "llm": "language model",
    "tts": "voice",
}

INTERNAL_ERROR_MESSAGE = "Something went wrong on the server — please try again."
RATE_LIMITED_MESSAGE = "Too many messages at once; some were ignored."


def retry_delay(err: ProviderError, attempt: int) -> float | None:
    """Seconds to wait before trying ``attempt + 1``, or None: give up."""
    if attempt >= 2 or not err.retryable:
        return None
    return min(err.retry_after or DEFAULT_RETRY_DELAY_S, RETRY_AFTER_CAP_S)


def user_message(err: ProviderError) -> str:
    """What a person reads when a stage fails: plain words, no internals."""
    service = SERVICE_NAMES[err.stage]
    return {
        "auth": f"The {service} service rejected the server's API key. "
        "Please check the server's configuration.",
        "quota": f"The {service} service is out of quota. Please check the account's plan.",
        "invalid": f"The {service} service refused the request. "
        "Please check the server's model and voice settings.",
        "rate_limited": f"The {service} service is busy right now — please try again in a moment.",
        "timeout": f"The {service} service took too long to answer — please try again.",
        "bad_output": f"The {service} service sent back something I couldn't use — "
        "please try again.",
    }.get(err.kind, f"I couldn't reach the {service} service — please try again.")


def fallback_message(stage: Stage) -> str:
    """What a person reads, once a call, when a backup engine takes a stage over."""
    return {
        "stt": "Speech recognition isn't answering, so a backup recognizer is listening instead.",
        "llm": "The language model isn't answering, so a simpler backup is replying instead.",
        "tts": "The voice service isn't answering, so you'll hear a backup voice instead.",
    }[stage]


def session_ended_message(err: ProviderError) -> str:
    """What a person reads when a provider failure ends the conversation."""
    service = SERVICE_NAMES[err.stage]
    why = (
        f"The {service} service rejected the server's API key"
        if err.kind == "auth"
        else f"The {service} service is out of quota"
        if err.kind == "quota"
        else f"The {service} service keeps failing"
    )
    return f"{why}, so this conversation has ended. Please try again later."


def turn_failed_event(err: ProviderError) -> str:
    """The one ``error`` event of a turn a provider failed."""
    return protocol.error(
        user_message(err), f"{err.stage}_{err.kind}", retryable=err.retryable, stage=err.stage
    )


def session_ended_event(err: ProviderError) -> str:
    """The ``error`` event that tells the page a provider ended the call."""
    return protocol.error(
        session_ended_message(err), "provider_unavailable", retryable=False, stage=err.stage
    )


class ErrorBudget:
    """Consecutive failed turns per stage; ``exhausted`` is the error that
    should end the session, once there is one."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._failures: dict[Stage, int] = {"stt": 0, "llm": 0, "tts": 0}
        self.exhausted: ProviderError | None = None

    def record(self, stage: Stage, err: ProviderError | None) -> None:
        if err is None:
            self._failures[stage] = 0
            return
        self._failures[stage] += 1
        if self.exhausted is None and (
            err.kind in FATAL_ERROR_KINDS or self._failures[stage] >= self._limit
        ):
            self.exhausted = err

    def failures(self, stage: Stage) -> int:
        return self._failures[stage]


class CallFaults:
    """One call's fault policy: counts each stage's failures against the
    budget (and in /metrics), tells the person once a stage when a fallback
    engine takes over, and says when the call must end."""

    def __init__(self, limit: int, metrics: Metrics, send: Callable[[str], object]) -> None:
        self.budget = ErrorBudget(limit)
        self._metrics = metrics
        self._send = send
        self._fallbacks_told: set[Stage] = set()

    def stage_result(self, stage: Stage, err: ProviderError | None) -> None:
        if err is not None:
            self._metrics.errors.labels(stage=stage, kind=err.kind).inc()
        self.budget.record(stage, err)

    def fallback(
        self, stage: Stage, from_engine: str, to_engine: str, names: dict[str, str]
    ) -> None:
        self._metrics.fallbacks.labels(stage=stage, **{"from": from_engine, "to": to_engine}).inc()
        if stage in self._fallbacks_told:
            return  # one notice a stage per call is enough
        self._fallbacks_told.add(stage)
        message = fallback_message(stage)
        self._send(protocol.provider_fallback(stage, from_engine, to_engine, message, names))

    def end_if_exhausted(self, label: str) -> bool:
        """After a turn: True (and the person told why) when a stage has
        failed past the budget and the call should end."""
        err = self.budget.exhausted
        if err is None:
            return False
        log.warning(
            "%s: ending, %s provider unavailable (%s, %d in a row)",
            label,
            err.stage,
            err.kind,
            self.budget.failures(err.stage),
        )
        self._send(session_ended_event(err))
        return True
