"""In-process fake engines with scripted answers, timing and faults.

For unit tests of the turn pipeline and the session policy: no HTTP, no
threads, no WebRTC, so a test runs in milliseconds. (The HTTP fakes next to
this module test the real cloud providers; these replace the providers.)
Modelled on LiveKit Agents' tests/fake_stt.py, fake_llm.py and fake_tts.py.

Each fake implements its stage's protocol from ``media_server.providers.base``
and is named ``"fake"``. What it answers, and when, is scripted:

* ``delay``: seconds before the result (STT) or the first item (LLM token,
  TTS chunk); ``item_delay``: seconds between items. Every wait is an
  ``asyncio.sleep`` looked up at call time (so a fast or virtual clock that
  patches it, or drives the loop, applies), and a stream sleeps between items
  even at 0 s, handing the loop over as a real network stream does.
* the answer: ``FakeSTT`` transcripts, ``FakeLLM`` replies (one text for every
  call, or one per call in order; a reply streams as word tokens, see
  ``tokens_of``), ``FakeTTS`` a tone of ``audio_ms`` per text, in
  ``chunk_ms`` chunks of 16-bit mono PCM.
* faults: ``fail(error, on=..., after=...)`` raises a ``ProviderError`` and
  ``hang(on=..., after=...)`` never answers (until cancelled: deadlines), on
  the given 1-based call numbers or on every call. ``after`` items are
  delivered first, which is "the reply failed after the person heard part of
  it". A fault strikes where the next item would have come, after its delay.

Every call is recorded as a ``Call`` (its number, what was asked, how many
items went out, how it ended) so a test can assert on what the pipeline did.
Requests are recorded when made; failures happen while iterating, as with
the real engines (a stream's first ``anext`` is where a request goes out).
Scripts are strict: a call past the end of a list of answers fails the test
with an ``AssertionError`` rather than inventing an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from media_server.providers.base import Providers, STTCapabilities, TTSCapabilities
from media_server.types import (
    AudioChunk,
    ChatMessage,
    ProviderError,
    ReplyOptions,
    Stage,
    Transcript,
    Utterance,
)

DEFAULT_TRANSCRIPT = "Hello, can you help me?"
DEFAULT_REPLY = "Sure, I can help with that."

T = TypeVar("T")

Outcome = Literal["running", "hanging", "done", "failed", "cancelled", "closed"]


# ---- faults ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """Something that goes wrong on some calls of a fake engine."""

    error: ProviderError | None = None
    """Raised when the fault strikes; None means hang: never answer, until cancelled."""
    calls: frozenset[int] | None = None
    """The 1-based call numbers it strikes on; None: every call."""
    after: int = 0
    """Items delivered before it strikes (LLM tokens, TTS chunks); STT has no items."""

    def applies_to(self, call: int) -> bool:
        return self.calls is None or call in self.calls


def _calls(on: int | Iterable[int] | None) -> frozenset[int] | None:
    if on is None:
        return None
    return frozenset([on] if isinstance(on, int) else on)


def fail(error: ProviderError, *, on: int | Iterable[int] | None = None, after: int = 0) -> Fault:
    """Raise ``error`` on call ``on`` (1-based; several, or None: every call),
    after delivering ``after`` items."""
    return Fault(error, _calls(on), after)


def hang(*, on: int | Iterable[int] | None = None, after: int = 0) -> Fault:
    """Never answer on call ``on`` (as ``fail``), after delivering ``after`` items."""
    return Fault(None, _calls(on), after)


Faults = Fault | Iterable[Fault]


# ---- what was asked ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LLMRequest:
    messages: tuple[ChatMessage, ...]
    options: ReplyOptions


@dataclass(frozen=True, slots=True)
class TTSRequest:
    text: str
    voice: str


@dataclass(eq=False)
class Call(Generic[T]):
    """One call of a fake engine, as it went."""

    number: int  # 1-based, in the order the calls were made
    request: T
    items: int = 0  # tokens or chunks delivered so far
    outcome: Outcome = "running"


@contextlib.contextmanager
def _tracking(call: Call[Any]) -> Iterator[None]:
    """Sets ``call.outcome`` from how the block ends."""
    try:
        yield
    except GeneratorExit:  # the consumer closed the stream early (barge-in)
        call.outcome = "closed"
        raise
    except asyncio.CancelledError:  # a deadline or a cancelled task
        call.outcome = "cancelled"
        raise
    except BaseException:
        call.outcome = "failed"
        raise
    call.outcome = "done"


class _Scripted:
    """What the three fakes share: call numbering, faults, timing, lifecycle."""

    name = "fake"
    stage: Stage

    def __init__(self, *, delay: float, item_delay: float, faults: Faults) -> None:
        self.delay = delay
        self.item_delay = item_delay
        self.faults: list[Fault] = [faults] if isinstance(faults, Fault) else list(faults)
        self.warm_ups = 0
        self.closed = False
        self._numbered = 0

    def _next_number(self) -> int:
        self._numbered += 1
        return self._numbered

    def _fault_for(self, number: int) -> Fault | None:
        return next((f for f in self.faults if f.applies_to(number)), None)

    def _check_open(self) -> None:
        if self.closed:
            raise ProviderError(self.stage, "unavailable", f"fake {self.stage}: closed")

    async def _wait(self, call: Call[Any], fault: Fault | None) -> None:
        """The wait before item ``call.items``, then the fault if it strikes there."""
        await asyncio.sleep(self.delay if call.items == 0 else self.item_delay)
        if fault is not None and fault.after == call.items:
            await _strike(call, fault)

    async def _end(self, call: Call[Any], fault: Fault | None) -> None:
        """After the last item: a fault due later strikes now (after the wait an
        item would have taken), and an empty answer still takes ``delay``."""
        late = fault if fault is not None and fault.after >= call.items else None
        if late is not None or call.items == 0:
            await asyncio.sleep(self.delay if call.items == 0 else self.item_delay)
        if late is not None:
            await _strike(call, late)

    async def warm_up(self) -> None:
        self.warm_ups += 1

    async def close(self) -> None:
        self.closed = True


async def _strike(call: Call[Any], fault: Fault) -> None:
    if fault.error is not None:
        raise fault.error
    call.outcome = "hanging"
    await asyncio.get_running_loop().create_future()  # until cancelled


def _scripted(answers: T | Sequence[T], number: int, what: str) -> T:
    if not isinstance(answers, list | tuple):
        return answers  # type: ignore[return-value]
    assert number <= len(answers), f"fake: call {number} but only {len(answers)} {what} scripted"
    return answers[number - 1]


# ---- STT -----------------------------------------------------------------------------


class FakeSTT(_Scripted):
    """SpeechToText answering scripted transcripts.

    ``transcripts``: one text for every utterance, or a list with one per
    call, in order (a call is a ``transcribe()`` or an ``open_stream()`` that
    returned a stream, whether or not that stream is finished).

    With ``streaming=True``, ``open_stream()`` hands out ``FakeSTTStream``s,
    at most ``max_streams`` open at once (beyond that it returns None, like an
    engine whose decoders are all busy). A stream's transcript comes from
    ``finish()`` after ``finish_delay`` (default: ``delay``); a fault scheduled
    for its call strikes there.
    """

    stage: Stage = "stt"

    def __init__(
        self,
        transcripts: str | Sequence[str] = DEFAULT_TRANSCRIPT,
        *,
        delay: float = 0.0,
        finish_delay: float | None = None,
        faults: Faults = (),
        streaming: bool = False,
        max_streams: int | None = None,
        language: str | None = "en",
    ) -> None:
        super().__init__(delay=delay, item_delay=0.0, faults=faults)
        self.capabilities = STTCapabilities(streaming=streaming)
        self.transcripts = transcripts
        self.finish_delay = delay if finish_delay is None else finish_delay
        self.max_streams = max_streams
        self.language = language
        self.calls: list[Call[Utterance | FakeSTTStream]] = []

    @property
    def utterances(self) -> list[Utterance]:
        """What ``transcribe()`` was given, in order."""
        return [c.request for c in self.calls if isinstance(c.request, Utterance)]

    @property
    def streams(self) -> list[FakeSTTStream]:
        """Every stream handed out, in order."""
        return [c.request for c in self.calls if isinstance(c.request, FakeSTTStream)]

    @property
    def open_streams(self) -> int:
        return sum(1 for s in self.streams if not s.ended)

    def _transcript(self, number: int) -> Transcript:
        return Transcript(_scripted(self.transcripts, number, "transcripts"), self.language)

    async def transcribe(self, utterance: Utterance) -> Transcript:
        call: Call[Utterance | FakeSTTStream] = Call(self._next_number(), utterance)
        self.calls.append(call)
        with _tracking(call):
            self._check_open()
            await asyncio.sleep(self.delay)
            if (fault := self._fault_for(call.number)) is not None:
                await _strike(call, fault)
            return self._transcript(call.number)

    def open_stream(self) -> FakeSTTStream | None:
        if not self.capabilities.streaming or self.closed:
            return None
        if self.max_streams is not None and self.open_streams >= self.max_streams:
            return None
        number = self._next_number()
        stream = FakeSTTStream(self, number)
        self.calls.append(stream.call)
        return stream


class FakeSTTStream:
    """One utterance fed while spoken; records the PCM and how it ended."""

    def __init__(self, owner: FakeSTT, number: int) -> None:
        self._owner = owner
        self.call: Call[Utterance | FakeSTTStream] = Call(number, self)
        self.fed: list[bytes] = []
        self.late_feeds = 0  # feed() calls after finish() or cancel(): a caller's bug
        self.finished = False  # finish() was called
        self.cancelled = False  # cancel() was called
        self.ended = False
        self.interims = 0  # interim() calls

    @property
    def pcm(self) -> bytes:
        return b"".join(self.fed)

    def feed(self, pcm: bytes) -> None:
        if self.ended:
            self.late_feeds += 1
            return
        self.fed.append(pcm)

    async def interim(self) -> Transcript:
        """The words so far: this call's scripted transcript, without ending it."""
        if self.ended:
            raise ProviderError("stt", "bad_output", "fake stt: stream already ended")
        self.interims += 1
        self._owner._check_open()
        return self._owner._transcript(self.call.number)

    async def finish(self) -> Transcript:
        if self.ended:
            raise ProviderError("stt", "bad_output", "fake stt: stream already ended")
        self.ended = self.finished = True
        owner, call = self._owner, self.call
        with _tracking(call):
            owner._check_open()
            await asyncio.sleep(owner.finish_delay)
            if (fault := owner._fault_for(call.number)) is not None:
                await _strike(call, fault)
            return owner._transcript(call.number)

    def cancel(self) -> None:
        if self.ended:
            return
        self.ended = self.cancelled = True
        self.call.outcome = "cancelled"


# ---- LLM -----------------------------------------------------------------------------


def tokens_of(text: str) -> list[str]:
    """How ``FakeLLM`` streams a reply: words, each after its leading space
    ("Sure," " I" " can"), so the tokens join back into the text."""
    return re.findall(r"\s*\S+", text)


class FakeLLM(_Scripted):
    """LanguageModel streaming scripted replies token by token.

    ``replies``: one text for every call, or a list with one per call, in
    order. ``item_delay`` is the time between tokens.
    """

    stage: Stage = "llm"

    def __init__(
        self,
        replies: str | Sequence[str] = DEFAULT_REPLY,
        *,
        delay: float = 0.0,
        item_delay: float = 0.0,
        faults: Faults = (),
    ) -> None:
        super().__init__(delay=delay, item_delay=item_delay, faults=faults)
        self.replies = replies
        self.calls: list[Call[LLMRequest]] = []

    @property
    def requests(self) -> list[LLMRequest]:
        return [c.request for c in self.calls]

    @property
    def messages(self) -> list[tuple[ChatMessage, ...]]:
        """The conversation each call was given, in order."""
        return [c.request.messages for c in self.calls]

    def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str]:
        call = Call(self._next_number(), LLMRequest(tuple(messages), options))
        self.calls.append(call)
        return self._stream(call)

    async def _stream(self, call: Call[LLMRequest]) -> AsyncIterator[str]:
        with _tracking(call):
            self._check_open()
            fault = self._fault_for(call.number)
            for token in tokens_of(_scripted(self.replies, call.number, "replies")):
                await self._wait(call, fault)
                call.items += 1
                yield token
            await self._end(call, fault)


# ---- TTS -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def sine_pcm(ms: int, sample_rate: int = 16000, frequency: float = 440.0) -> bytes:
    """``ms`` of a sine tone at half of full scale, s16le mono."""
    t = np.arange(ms * sample_rate // 1000) / sample_rate
    return (np.sin(2 * np.pi * frequency * t) * 0.5 * 32767).astype("<i2").tobytes()


class FakeTTS(_Scripted):
    """TextToSpeech answering every text with a tone, streamed in chunks.

    Each call yields ``audio_ms`` of a ``frequency`` Hz tone (a number, or a
    function of the text; 0 yields no audio) as 16-bit mono PCM at
    ``sample_rate``, in chunks of ``chunk_ms`` (the last may be shorter). ``item_delay`` is the time
    between chunks. Blank text yields nothing and raises nothing, as the real
    engines send no request for it; it is still a numbered, recorded call.
    """

    stage: Stage = "tts"

    def __init__(
        self,
        *,
        audio_ms: int | Callable[[str], int] = 200,
        chunk_ms: int = 20,
        sample_rate: int = 16000,
        frequency: float = 440.0,
        delay: float = 0.0,
        item_delay: float = 0.0,
        faults: Faults = (),
    ) -> None:
        super().__init__(delay=delay, item_delay=item_delay, faults=faults)
        self.capabilities = TTSCapabilities(streaming=True, encoding="pcm", sample_rate=sample_rate)
        self.audio_ms = audio_ms
        self.chunk_ms = chunk_ms
        self.sample_rate = sample_rate
        self.frequency = frequency
        self.calls: list[Call[TTSRequest]] = []

    @property
    def texts(self) -> list[str]:
        """The texts synthesized, in order."""
        return [c.request.text for c in self.calls]

    def audio_for(self, text: str) -> bytes:
        """All the PCM a call for ``text`` yields when nothing goes wrong."""
        if not text.strip():
            return b""
        ms = self.audio_ms(text) if callable(self.audio_ms) else self.audio_ms
        return sine_pcm(ms, self.sample_rate, self.frequency)

    def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioChunk]:
        call = Call(self._next_number(), TTSRequest(text, voice))
        self.calls.append(call)
        return self._stream(call)

    async def _stream(self, call: Call[TTSRequest]) -> AsyncIterator[AudioChunk]:
        with _tracking(call):
            self._check_open()
            if not call.request.text.strip():
                return
            fault = self._fault_for(call.number)
            pcm = self.audio_for(call.request.text)
            step = self.chunk_ms * self.sample_rate // 1000 * 2
            for start in range(0, len(pcm), step):
                await self._wait(call, fault)
                call.items += 1
                yield AudioChunk(pcm[start : start + step], "pcm", self.sample_rate, 1)
            await self._end(call, fault)


# ---- the set ------------------------------------------------------------------------


def fake_providers(
    stt: FakeSTT | None = None, llm: FakeLLM | None = None, tts: FakeTTS | None = None
) -> Providers:
    """A ``Providers`` of fakes; each engine not given is a default fake."""
    return Providers(stt=stt or FakeSTT(), llm=llm or FakeLLM(), tts=tts or FakeTTS())
