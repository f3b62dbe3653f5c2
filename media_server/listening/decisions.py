"""What the listener (listener.py) decides, for the session to carry out:

- ``PersonStarted``: speech began (the session shows "listening" if the
  agent is quiet, and counts it as activity).
- ``PauseHeard``: the person paused mid-turn; the session may transcribe
  the turn so far and hand the text back with ``interim_transcript``.
- ``TurnEnded``: the person finished while the agent was quiet: answer this
  utterance (with the streaming decode, or the speculative transcript that
  covers all of it, if there is one).
- ``Hold``: the person has talked over the agent for ``barge_in_min_ms``: it
  may be an interruption, or only "mm-hmm": stop the agent's audio now, but
  keep it.
- ``BargeIn``: they went on to ``barge_in_confirm_ms`` of speech: a real
  interruption; cut the agent's reply.
- ``FalseInterruption``: after a ``Hold`` they stopped short of that (a
  backchannel, a cough): the agent goes on from where it stopped.
- ``SpeechIgnored``: speech that is not a turn: too short (a blip), or it
  ended over the agent without reaching the barge-in minimum (a
  backchannel, a cough, the agent's own echo).
"""

from __future__ import annotations

from dataclasses import dataclass

from media_server.listening.completion import Completion
from media_server.providers.base import SpeechToTextStream
from media_server.types import Utterance


@dataclass(frozen=True, slots=True)
class PersonStarted:
    at: float


@dataclass(frozen=True, slots=True)
class PauseHeard:
    pause: int  # hand it back with interim_transcript()
    pcm: bytes  # the turn so far
    stt_stream: SpeechToTextStream | None  # the turn's streaming decode, if any


@dataclass(frozen=True, slots=True)
class TurnEnded:
    utterance: Utterance
    # The same utterance decoded while it was spoken, or None.
    stt_stream: SpeechToTextStream | None
    # A speculative transcript of the whole utterance (nothing was said after
    # the pause it was taken in), or None: the turn need not transcribe again.
    transcript: str | None = None
    reading: Completion | None = None  # what the words said about the ending


@dataclass(frozen=True, slots=True)
class Hold:
    at: float


@dataclass(frozen=True, slots=True)
class BargeIn:
    at: float


@dataclass(frozen=True, slots=True)
class FalseInterruption:
    at: float


@dataclass(frozen=True, slots=True)
class SpeechIgnored:
    reason: str  # "too_short" | "over_agent"
    at: float


Decision = (
    PersonStarted | PauseHeard | TurnEnded | Hold | BargeIn | FalseInterruption | SpeechIgnored
)
