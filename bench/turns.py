"""End of turn on labelled speech: the fixed pause against the one that reads the sentence.

Offline: no server, no WebRTC. Each labelled timeline (spoken segments, the
pause after each, how many turns it is) is synthesized with espeak-ng
(several voices and speeds), trimmed to its voiced audio, laid out on a
16 kHz timeline and fed 20 ms at a time, on an exact clock, to the
``Listener`` (the server's real VAD, Silero by default, ``--vad webrtcvad``
for the old one) with each end-of-turn
policy in the same run:

- ``silence``: today's behaviour, a fixed ``TURN_SILENCE_MS`` (500 ms) pause;
- ``lexical``: the new default (``EndOfTurn.from_settings`` of default
  settings): at each ``PauseHeard`` a transcript of the turn so far comes
  back ``--stt-delay-ms`` later on the bench's clock and its reading sets the
  pause (200 ms after a finished sentence, up to 1800 ms after an unfinished
  one, 500 ms when it cannot tell).

Transcripts come from the "oracle": the labelled text of the segments whose
audio ended before the pause (as a punctuating cloud STT would write it, or
as bare lowercase words like pocketsphinx), so the policy is measured apart
from recognition errors. A pause that falls inside a segment (espeak's own
gap at a comma) gets no transcript: the oracle cannot label half a segment.
``--stt pocketsphinx`` adds a row where the embedded recognizer transcribes
each pause's audio (off the bench's clock; its answer arrives
``--stt-delay-ms`` later like the oracle's).

Per policy: turns expected vs got, mid-turn cut-offs (a turn committed before
the labelled turn's last segment was over), timelines split (more turns than
labelled) or merged (fewer), and the end-of-turn wait from the true end of
speech (the end of the last voiced audio of the turn's last segment, known
from the synthesized PCM) to the commit (``TurnEnded.utterance.turn_ended_at``):
on complete sentences said in one go and on every labelled turn.

The agent never holds the floor here: a cut-off's remainder becomes a turn of
its own instead of a barge-in, so the policy is measured by itself.

    uv run python -m bench.turns [--stt-delay-ms 150] [--voices en-us,en-gb,...]
        [--speeds 0.9,1.0,1.15] [--all-voices] [--stt oracle|pocketsphinx]
        [--sweep-delays 0,50,100,150,300] [--sweep-min-waits 100,150,200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from bench.common import percentile, print_table, write_results
from media_server.config import Settings
from media_server.listening.decisions import PauseHeard, PersonStarted, SpeechIgnored, TurnEnded
from media_server.listening.end_of_turn import EndOfTurn
from media_server.listening.listener import Listener
from media_server.listening.segmenter import SegmenterConfig, segmenter_config
from media_server.listening.vad import DEFAULT_THRESHOLD, SileroPool, screened_silero

RATE = 16000
FRAME_S = 0.02
FRAME_BYTES = RATE * 2 // 50
T0 = 1000.0  # clock time of the first sample of every timeline
LEAD_S = 0.5  # silence before the first segment
TAIL_MS = 3000  # silence after the last segment (more than the longest wait)
TURN_BREAK_MS = 2000  # a pause at least this long separates labelled turns
TRIM_DBFS = -40.0  # 10 ms windows quieter than this (peak) are espeak's silence
GOAL_WAIT_P50_MS = 250.0
GOAL_MAX_PAUSE_MS = 1000  # the no-cut-off goal covers pauses up to this
# Categories: (a) complete, said in one go; (b) hesitation; (c) unfinished
# clause; (d) two turns; (e) the person trails off and stops; (f) a finished
# clause, then more after a short pause (ambiguous; outside the goals).
CATEGORIES = ("complete", "hesitation", "unfinished", "two_turns", "trails_off", "then_more")
ONE_GO = ("complete", "two_turns")  # "complete sentences": the wait goal's set
GOAL_CUTOFF_CATEGORIES = ("hesitation", "unfinished")
# espeak-ng calls its British voice "en"; "en-gb" would fall back to en-us.
VOICE_ALIASES = {"en-gb": "en"}
DEFAULT_VOICES = "en-us,en-gb,en-gb-scotland,en-us+f3,en-029,en-gb-x-rp"


# ---- the labelled set ----------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    text: str  # what the voice says
    pause_ms: int  # silence after it (after the last one: the end of the timeline)
    written: str | None = None  # how a punctuating STT writes it ("415" for "four one five")

    @property
    def as_written(self) -> str:
        return self.written if self.written is not None else self.text


@dataclass(frozen=True)
class Timeline:
    name: str
    category: str
    segments: tuple[Segment, ...]
    turns: int = 1  # the label: how many turns this is

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.name}: unknown category {self.category!r}")
        if len(self.turn_groups()) != self.turns:
            raise ValueError(
                f"{self.name}: labelled {self.turns} turns, pauses of {TURN_BREAK_MS}+ ms "
                f"make {len(self.turn_groups())}"
            )

    def turn_groups(self) -> list[list[int]]:
        """Segment indexes of each labelled turn."""
        groups: list[list[int]] = [[]]
        for i, seg in enumerate(self.segments):
            groups[-1].append(i)
            if seg.pause_ms >= TURN_BREAK_MS and i < len(self.segments) - 1:
                groups.append([])
        return groups

    @property
    def max_inner_pause_ms(self) -> int:
        """The longest pause inside a labelled turn (0: said in one go)."""
        inner = [self.segments[i].pause_ms for group in self.turn_groups() for i in group[:-1]]
        return max(inner, default=0)


def tl(name: str, category: str, *parts: str | tuple[Any, ...], turns: int = 1) -> Timeline:
    """A timeline from ``(text, pause_ms[, written])`` tuples; a bare string is
    a segment with no pause of its own (the last one: the timeline's tail)."""
    segments = tuple(Segment(p, 0) if isinstance(p, str) else Segment(*p) for p in parts)
    return Timeline(name, category, segments, turns)


# fmt: off
TIMELINES: tuple[Timeline, ...] = (
    # (a) complete sentences and short answers, said in one go
    tl("open-tomorrow", "complete", "What time do you open tomorrow?"),
    tl("pay-by-card", "complete", "Can I pay by card?"),
    tl("forgot-password", "complete", "I forgot my password."),
    tl("that-works", "complete", "Yes, that works."),
    tl("table-tonight", "complete", "Do you have a table for two tonight?"),
    tl("cancel-friday", "complete", "I'd like to cancel my appointment on Friday."),
    tl("card-declined", "complete", "My card was declined at the grocery store."),
    tl("app-crashing", "complete", "The app keeps crashing when I open it."),
    tl("return-boston", "complete", "How much is a return ticket to Boston?"),
    tl("thats-everything", "complete", "No thanks, that's everything."),
    tl("pharmacy-sundays", "complete", "Is the pharmacy open on Sundays?"),
    tl("transfer-savings", "complete", "Please move fifty dollars into my savings account."),
    tl("sure", "complete", "Sure."),
    tl("flight-on-time", "complete", "Can you check whether my flight is on time?"),
    tl("thursday-afternoon", "complete", "Thursday afternoon."),
    tl("router-blinking", "complete", "The light on my router is blinking red."),
    # (b) hesitations, then the rest
    tl("um-book-saturday", "hesitation", ("Um", 600), "I'd like to book a table for Saturday."),
    tl("so-weekend-hours", "hesitation", ("So", 800), "what are your opening hours on weekends?"),
    tl("well-um-change-flight", "hesitation", ("Well, um", 1000), "can I change my flight?"),
    tl("uh-internet-down", "hesitation", ("Uh", 400), "my internet is down again."),
    tl("think-uh-wallet", "hesitation", ("I think, uh", 700), "I left my wallet in the taxi."),
    tl("yeah-um-invoice", "hesitation", ("Yeah, um", 900), "could you send me the invoice again?"),
    tl("okay-so-walk-in", "hesitation", ("Okay so", 500), "do you take walk-in patients?"),
    tl("um-uh-refund", "hesitation", ("Um", 500), ("I was charged, uh", 800),
       "twice for the same order."),
    tl("so-basically-atm", "hesitation", ("So basically", 700),
       "the machine kept my card."),
    tl("and-um-dessert", "hesitation", ("And um", 1200), "can we see the dessert menu?"),
    # (c) a pause after an unfinished clause, then the rest
    tl("appointment-for", "unfinished", ("I'd like to book an appointment for", 800),
       "next Tuesday."),
    tl("phone-groups", "unfinished",
       ("My number is four one five", 700, "My number is 415"),
       ("five five five", 700, "555"), ("zero one two three.", 0, "0123.")),
    tl("wondering-if", "unfinished", ("I was wondering if", 900), "you deliver on Sundays."),
    tl("reserve-at", "unfinished", ("Can I reserve a table for six people at", 600),
       "eight thirty?"),
    tl("reschedule-because", "unfinished", ("I need to reschedule because", 1000),
       "I have a work meeting."),
    tl("take-the", "unfinished", ("The doctor told me to take the", 700),
       "blue pills twice a day."),
    tl("transfer-to", "unfinished", ("I want to move money from checking to", 900),
       "my savings account."),
    tl("card-groups", "unfinished",
       ("My card number is four two four two", 700, "My card number is 4242"),
       ("four two four two", 700, "4242"), ("four two four two", 700, "4242"),
       ("four two four two.", 0, "4242.")),
    tl("account-groups", "unfinished",
       ("My account number is two two seven", 600, "My account number is 227"),
       ("four nine one", 800, "491"), ("eight eight.", 0, "88.")),
    tl("router-and", "unfinished", ("I restarted the router and", 800),
       "it still does not connect."),
    tl("log-in-the", "unfinished", ("Every time I log in, the", 600), "page just goes blank."),
    tl("chicago-on", "unfinished", ("I'm flying to Chicago on", 700), "the twenty third."),
    tl("tell-me-if", "unfinished", ("Could you tell me if", 1200),
       "the clinic takes walk-ins?"),
    tl("room-with", "unfinished", ("We'd like a room with", 500), "two beds and a view."),
    tl("statement-from", "unfinished", ("The charge on my statement is from", 800),
       "a company I don't recognize."),
    tl("taxi-at", "unfinished", ("I need a taxi to the airport at", 1000),
       "six in the morning."),
    tl("email-at", "unfinished", ("My email is john dot smith at", 700),
       "example dot com."),
    tl("gluten-for", "unfinished", ("Is there a gluten free option for", 900), "the pasta?"),
    tl("error-says", "unfinished", ("The error message says", 800), "connection timed out."),
    tl("after-update", "unfinished", ("It started happening after", 700),
       "the last update."),
    tl("salmon-and", "unfinished", ("I'd like the salmon and", 600),
       "a glass of white wine."),
    tl("booking-to", "unfinished", ("Can I move my booking to", 1100), "the following week?"),
    tl("pay-by", "unfinished", ("I'd like to pay by", 600), "bank transfer."),
    tl("symptoms-since", "unfinished", ("I've had a headache since", 900),
       "last Monday."),
    tl("the-doctor-wants", "unfinished", ("My doctor wants me to", 700),
       "get a blood test."),
    # (d) two separate turns
    tl("card-then-parking", "two_turns", ("Can I pay by card?", 2500),
       "Also, do you have parking?", turns=2),
    tl("password-then-email", "two_turns", ("I forgot my password.", 2500),
       "The email is the same as before.", turns=2),
    tl("bill-then-twice", "two_turns", ("Hi, I have a question about my bill.", 2500),
       "Why was I charged twice?", turns=2),
    tl("yes-then-tuesday", "two_turns", ("Yes.", 2500), "Tuesday at ten works for me.",
       turns=2),
    tl("window-then-meal", "two_turns", ("Book the window seat please.", 2500),
       "And add a vegetarian meal.", turns=2),
    # (e) the person trails off and stops
    tl("ask-about-the", "trails_off", "I was going to ask about the"),
    tl("help-with-my", "trails_off", "I need help with my"),
    tl("question-is", "trails_off", "So my question is"),
    # (f) a finished clause, then more after a short pause (one turn, by intent)
    tl("reschedule-then-thursday", "then_more", ("I need to reschedule my appointment.", 600),
       "Is Thursday possible?"),
    tl("available-then-friday", "then_more", ("Do you have anything available", 600),
       "on Friday evening?"),
    tl("cancelled-then-hotel", "then_more", ("My flight got cancelled", 700),
       "and I need a hotel."),
    tl("pizza-then-cheese", "then_more", ("I'd like a large pizza", 500),
       "with extra cheese."),
)
# fmt: on


# ---- audio -------------------------------------------------------------------

Synth = Callable[[str, str, float], bytes]  # (text, voice, speed) -> 16 kHz s16le mono


def voiced_bounds(pcm: bytes, threshold_dbfs: float = TRIM_DBFS) -> tuple[int, int]:
    """Sample range from the first to the last 10 ms window whose peak is
    above ``threshold_dbfs``: the segment without espeak's lead and tail."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    window = RATE // 100
    n = len(x) // window
    if n == 0:
        raise ValueError("no audio")
    peaks = np.abs(x[: n * window]).reshape(n, window).max(axis=1)
    loud = np.nonzero(peaks > 32768 * 10 ** (threshold_dbfs / 20))[0]
    if len(loud) == 0:
        raise ValueError("no voiced audio")
    return int(loud[0]) * window, int(loud[-1] + 1) * window


@dataclass(frozen=True)
class SpanAudio:
    """Where a segment's voiced audio lies on the bench's clock."""

    index: int
    turn: int
    text: str
    written: str
    start: float
    end: float


@dataclass(frozen=True)
class Rendered:
    timeline: Timeline
    voice: str
    speed: float
    pcm: bytes
    spans: tuple[SpanAudio, ...]

    def turn_spans(self) -> list[tuple[float, float]]:
        """(start, true end of speech) of each labelled turn."""
        out: list[tuple[float, float]] = []
        for turn in range(self.timeline.turns):
            mine = [s for s in self.spans if s.turn == turn]
            out.append((mine[0].start, mine[-1].end))
        return out


def render(timeline: Timeline, voice: str, speed: float, synth: Synth) -> Rendered:
    turn_of = {i: k for k, group in enumerate(timeline.turn_groups()) for i in group}
    pcm = bytearray(round(LEAD_S * RATE) * 2)
    spans = []
    for i, seg in enumerate(timeline.segments):
        audio = synth(seg.text, voice, speed)
        lo, hi = voiced_bounds(audio)
        start = T0 + len(pcm) / 2 / RATE
        pcm += audio[lo * 2 : hi * 2]
        end = T0 + len(pcm) / 2 / RATE
        spans.append(SpanAudio(i, turn_of[i], seg.text, seg.as_written, start, end))
        last = i == len(timeline.segments) - 1
        pause_ms = max(seg.pause_ms, TAIL_MS) if last else seg.pause_ms
        pcm += bytes(round(pause_ms * RATE / 1000) * 2)
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return Rendered(timeline, voice, speed, bytes(pcm), tuple(spans))


class EspeakVoices:
    """espeak-ng speech at 16 kHz, sped up or slowed down like a tape (the
    pitch moves with it): synthesize_to_pcm has one speaking rate."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, float], bytes] = {}

    def __call__(self, text: str, voice: str, speed: float) -> bytes:
        from media_server.audio.pcm import PcmResampler
        from media_server.providers.espeak_tts import synthesize_to_pcm

        key = (text, voice, speed)
        if key not in self._cache:
            pcm, rate = synthesize_to_pcm(text, voice)
            resampler = PcmResampler(round(rate * speed), 1, RATE)
            self._cache[key] = resampler.convert(pcm) + resampler.flush()
        return self._cache[key]

    def known(self, voice: str) -> bool:
        """Whether espeak-ng has ``voice`` (it falls back to en-us, with a warning)."""
        records: list[logging.LogRecord] = []

        class Catch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        logger = logging.getLogger("media_server.providers.espeak_tts")
        handler = Catch(logging.WARNING)
        logger.addHandler(handler)
        try:
            self("Testing.", voice, 1.0)
        finally:
            logger.removeHandler(handler)
        return not any("unknown voice" in r.getMessage() for r in records)


# ---- transcripts -------------------------------------------------------------


@dataclass(frozen=True)
class PauseContext:
    rendered: Rendered
    pcm: bytes  # PauseHeard.pcm: the turn so far
    now: float  # when the pause was reported
    since: float  # the last turn ended (or speech was dropped) then


Hear = Callable[[PauseContext], Awaitable[str | None]]
_SILERO_POOL = SileroPool(keep=1)


def bare(text: str) -> str:
    """As a recognizer without punctuation writes it: lowercase words."""
    return " ".join(re.sub(r"[^\w\s']", " ", text).lower().split())


# A pause reported this close to a segment's end has heard all its words:
# only the soft tail of its last sound is missing, which the server's pause
# timing (by level) leaves out and a recognizer does not need.
ORACLE_TAIL_S = 0.12


def oracle_text(ctx: PauseContext, style: str = "written") -> str | None:
    """The labelled words of the turn so far: the segments (since the last
    turn ended) whose audio ended before the pause (but for its last
    ``ORACLE_TAIL_S``). None for a pause inside a segment: which of its
    words were said is not labelled."""
    spans = ctx.rendered.spans
    heard_by = ctx.now + ORACLE_TAIL_S
    if any(s.start < ctx.now and heard_by < s.end for s in spans):
        return None
    heard = [s for s in spans if s.start > ctx.since and s.end <= heard_by]
    if not heard:
        return None
    return " ".join(s.written if style == "written" else bare(s.text) for s in heard)


def oracle(style: str) -> Hear:
    async def hear(ctx: PauseContext) -> str | None:
        return oracle_text(ctx, style)

    return hear


class PocketsphinxHear:
    """The embedded recognizer on each pause's audio; records decode times."""

    def __init__(self) -> None:
        from media_server.providers.pocketsphinx_stt import PocketsphinxSTT

        self.stt = PocketsphinxSTT(max_streams=0)
        self.decode_ms: list[float] = []

    async def __call__(self, ctx: PauseContext) -> str | None:
        from media_server.types import Utterance

        start = time.perf_counter()
        transcript = await self.stt.transcribe(Utterance(pcm=ctx.pcm))
        self.decode_ms.append((time.perf_counter() - start) * 1000)
        return transcript.text.strip() or None


# ---- one timeline through one policy ---------------------------------------------


def score(turn_spans: Sequence[tuple[float, float]], commits: Sequence[float]) -> dict[str, Any]:
    """Commits (turn_ended_at) against the labelled turns (start, true end).

    A commit inside a labelled turn (after its first segment began, before
    its speech was over) is a cut-off; the first commit after a turn's true
    end and before the next turn begins ends that turn, and its wait is
    measured from the true end (None: no commit there, merged with the next)."""
    cutoffs = []
    for c in commits:
        for k, (start, end) in enumerate(turn_spans):
            if start <= c < end:
                cutoffs.append({"turn": k, "at": c})
    waits: list[float | None] = []
    for k, (_, end) in enumerate(turn_spans):
        nxt = turn_spans[k + 1][0] if k + 1 < len(turn_spans) else math.inf
        ends = [c for c in commits if end <= c < nxt]
        waits.append(round((ends[0] - end) * 1000, 1) if ends else None)
    expected, got = len(turn_spans), len(commits)
    return {
        "expected": expected,
        "got": got,
        "cutoffs": cutoffs,
        "split": got > expected,
        "merged": got < expected,
        "waits_ms": waits,
    }


@dataclass
class Policy:
    """A row of the table: an end-of-turn policy and where its words come from."""

    name: str
    end_of_turn: EndOfTurn
    hear: Hear | None = None
    max_speculative: int | None = None  # transcripts asked for per turn (None: every pause)
    results: list[dict[str, Any]] = field(default_factory=list)


async def run_timeline(
    rendered: Rendered,
    end_of_turn: EndOfTurn,
    hear: Hear | None,
    *,
    config: SegmenterConfig,
    stt_delay_ms: float,
    max_speculative: int | None = None,
    barge_in_min_ms: int = 200,
    is_speech: Callable[[bytes], bool] | None = None,
    vad: str = "webrtcvad",
) -> dict[str, Any]:
    """Feed the timeline 20 ms at a time (``vad``: the server's detector,
    fresh for each timeline, unless ``is_speech`` stands in for it); at each
    PauseHeard ask ``hear`` for the words so far (off the clock) and hand them back ``stt_delay_ms``
    later on it: before the first frame at or after that time. A newer pause
    or the end of the turn drops a transcript still on its way."""
    silero = None
    if is_speech is None and vad == "silero":
        silero = screened_silero(DEFAULT_THRESHOLD, 2)  # as the server runs it
        silero.attach(_SILERO_POOL.acquire())
        is_speech = silero.is_speech
    listener = Listener(
        config, barge_in_min_ms=barge_in_min_ms, end_of_turn=end_of_turn, is_speech=is_speech
    )
    try:
        return await _run_timeline(
            rendered, listener, hear, stt_delay_ms=stt_delay_ms, max_speculative=max_speculative
        )
    finally:
        if silero is not None:
            _SILERO_POOL.release(silero.detach())


async def _run_timeline(
    rendered: Rendered,
    listener: Listener,
    hear: Hear | None,
    *,
    stt_delay_ms: float,
    max_speculative: int | None,
) -> dict[str, Any]:
    pcm = rendered.pcm
    pending: list[tuple[float, int, str, dict[str, Any]]] = []
    since = -math.inf
    pauses: list[dict[str, Any]] = []
    commits: list[dict[str, Any]] = []
    dropped: list[float] = []
    turn_pauses = turn_asked = 0
    for i in range(len(pcm) // FRAME_BYTES):
        now = round(T0 + (i + 1) * FRAME_S, 6)
        for due, pause_id, text, record in pending:
            if due <= now + 1e-9:
                record["delivered_at"] = now
                record["accepted"] = listener.interim_transcript(pause_id, text, covers_turn=True)
        pending = [p for p in pending if p[0] > now + 1e-9]
        frame = pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
        for d in listener.feed(frame, now, agent_has_floor=False):
            if isinstance(d, PersonStarted):
                turn_pauses = turn_asked = 0
            elif isinstance(d, PauseHeard):
                pending = []  # a newer pause cancels the request still out
                turn_pauses += 1
                inside = any(sp.start < now < sp.end for sp in rendered.spans)
                record: dict[str, Any] = {"at": now, "text": None, "reading": None}
                if inside:
                    record["inside_segment"] = True
                pauses.append(record)
                if hear is None:
                    continue
                if max_speculative is not None and turn_asked >= max_speculative:
                    record["skipped"] = "max_speculative"
                    continue
                turn_asked += 1
                # As the server's InterimTranscripts does: the pause waits for
                # words that are on their way (up to the longest wait).
                listener.transcript_requested(d.pause)
                text = await hear(PauseContext(rendered, d.pcm, now, since))
                if not text:
                    listener.transcript_missing(d.pause)
                    record["skipped"] = "no words"
                    continue
                reading = listener.end_of_turn.reading(text)
                record["text"] = text
                record["reading"] = None if reading is None else [reading.verdict, reading.reason]
                pending.append((now + stt_delay_ms / 1000, d.pause, text, record))
            elif isinstance(d, TurnEnded):
                u = d.utterance
                reading = d.reading
                commits.append(
                    {
                        "at": u.turn_ended_at,
                        "vad_end": u.speech_ended_at,
                        "transcript": d.transcript,
                        "reading": None if reading is None else [reading.verdict, reading.reason],
                        "pauses": turn_pauses,
                        "asked": turn_asked,
                    }
                )
                pending, since = [], now
            elif isinstance(d, SpeechIgnored):
                dropped.append(d.at)
                pending, since = [], now
    listener.close()
    scored = score(rendered.turn_spans(), [c["at"] for c in commits])
    true_ends = [end for _, end in rendered.turn_spans()]
    cutoffs = []
    for cut in scored.pop("cutoffs"):
        said = [s for s in rendered.spans if s.turn == cut["turn"] and s.end <= cut["at"]]
        commit = next(c for c in commits if c["at"] == cut["at"])
        cutoffs.append(
            {
                "turn": cut["turn"],
                "at": _ms(cut["at"]),
                "after": said[-1].written if said else None,
                "transcript": commit["transcript"],
                "reading": commit["reading"],
            }
        )
    # The segmenter's end of speech (its last frame with the level of speech,
    # speech_ended_at) after the true end: what pauses are timed from.
    vad_tails = []
    for k, end in enumerate(true_ends):
        if scored["waits_ms"][k] is not None:
            commit = next(c for c in commits if c["at"] >= end)
            vad_tails.append(round((commit["vad_end"] - end) * 1000, 1))
    timeline = rendered.timeline
    return {
        "name": timeline.name,
        "category": timeline.category,
        "voice": rendered.voice,
        "speed": rendered.speed,
        "max_inner_pause_ms": timeline.max_inner_pause_ms,
        **scored,
        "cutoffs": cutoffs,
        "dropped": len(dropped),
        "vad_tail_ms": vad_tails,
        "pauses": [_on_timeline(p, "at", "delivered_at") for p in pauses],
        "commits": [_on_timeline(c, "at", "vad_end") for c in commits],
        "true_ends": [_ms(e) for e in true_ends],
    }


def _ms(t: float) -> int:
    """A clock time as ms from the start of the timeline."""
    return round((t - T0) * 1000)


def _on_timeline(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: _ms(v) if k in keys else v for k, v in record.items()}


# ---- summaries -----------------------------------------------------------------


def summarize(name: str, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    one_go = [w for r in results if r["category"] in ONE_GO for w in r["waits_ms"] if w is not None]
    every = [w for r in results for w in r["waits_ms"] if w is not None]
    commits = [c for r in results for c in r["commits"]]
    goal_set = [
        r
        for r in results
        if r["category"] in GOAL_CUTOFF_CATEGORIES and r["max_inner_pause_ms"] <= GOAL_MAX_PAUSE_MS
    ]
    tails = [t for r in results if r["category"] in ONE_GO for t in r["vad_tail_ms"]]
    return {
        "policy": name,
        "timelines": len(results),
        "turns_exp": sum(r["expected"] for r in results),
        "turns_got": sum(r["got"] for r in results),
        "cutoffs": sum(len(r["cutoffs"]) for r in results),
        "cutoffs_goal_set": sum(len(r["cutoffs"]) for r in goal_set),
        "goal_set_timelines": len(goal_set),
        "split": sum(r["split"] for r in results),
        "merged": sum(r["merged"] for r in results),
        "dropped": sum(r["dropped"] for r in results),
        "complete_p50": percentile(one_go, 50),
        "complete_p95": percentile(one_go, 95),
        "all_p50": percentile(every, 50),
        "all_p95": percentile(every, 95),
        "pauses_per_turn": statistics.fmean(c["pauses"] for c in commits) if commits else None,
        "stt_per_turn": statistics.fmean(c["asked"] for c in commits) if commits else None,
        "vad_tail_p50": percentile(tails, 50),
    }


TABLE = [
    "policy", "timelines", "turns_exp", "turns_got", "cutoffs", "split", "merged", "dropped",
    "complete_p50", "complete_p95", "all_p50", "all_p95", "pauses_per_turn", "stt_per_turn",
]  # fmt: skip


SWEEP_TABLE = [
    "min_wait_ms", "stt_delay_ms", "cutoffs", "cutoffs_goal_set", "complete_p50", "complete_p95",
    "all_p50",
]  # fmt: skip


def goals(row: dict[str, Any]) -> dict[str, Any]:
    p50 = row["complete_p50"]
    return {
        "wait_p50_met": p50 is not None and p50 <= GOAL_WAIT_P50_MS,
        "wait_p50_ms": p50,
        "no_cutoffs_met": row["cutoffs_goal_set"] == 0,
        "cutoffs_goal_set": row["cutoffs_goal_set"],
    }


def failures(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r["cutoffs"] or r["split"] or r["merged"]]


def describe_failure(r: dict[str, Any]) -> list[str]:
    lines = [
        f"  {r['name']} ({r['category']}, {r['voice']} x{r['speed']:g}): "
        f"{r['got']} turns for {r['expected']}"
    ]
    for cut in r["cutoffs"]:
        reading = cut["reading"]
        said = f"{reading[0]} ({reading[1]})" if reading else "no reading (default wait)"
        lines.append(
            f"    cut after {cut['after']!r}: transcript {cut['transcript']!r} read as {said}"
        )
    if not r["cutoffs"] and r["merged"]:
        commits = [c["at"] for c in r["commits"]]
        lines.append(f"    turns end at {r['true_ends']} ms, commits at {commits} ms")
    for p in r["pauses"]:
        if p.get("skipped"):
            where = ", inside a segment" if p.get("inside_segment") else ""
            lines.append(f"    pause at {p['at']} ms{where}: no transcript ({p['skipped']})")
    return lines


# ---- the run -------------------------------------------------------------------


def assign(
    timelines: Sequence[Timeline], voices: Sequence[str], speeds: Sequence[float], every: bool
) -> list[tuple[Timeline, str, float]]:
    """Each timeline with one voice and speed in turn, or (``every``) with all voices."""
    if every:
        return [
            (t, v, speeds[(i + j) % len(speeds)])
            for i, t in enumerate(timelines)
            for j, v in enumerate(voices)
        ]
    n = len(voices)
    return [(t, voices[i % n], speeds[(i // n) % len(speeds)]) for i, t in enumerate(timelines)]


async def run_policies(
    renders: Sequence[Rendered],
    policies: Sequence[Policy],
    *,
    config: SegmenterConfig,
    stt_delay_ms: float,
    barge_in_min_ms: int,
    is_speech: Callable[[bytes], bool] | None = None,
    vad: str = "webrtcvad",
) -> None:
    for policy in policies:
        policy.results = [
            await run_timeline(
                r,
                policy.end_of_turn,
                policy.hear,
                config=config,
                stt_delay_ms=stt_delay_ms,
                max_speculative=policy.max_speculative,
                barge_in_min_ms=barge_in_min_ms,
                is_speech=is_speech,
                vad=vad,
            )
            for r in renders
        ]


def print_category_table(policies: Sequence[Policy]) -> list[dict[str, Any]]:
    rows = []
    for cat in CATEGORIES:
        row: dict[str, Any] = {"category": cat}
        for p in policies:
            mine = [r for r in p.results if r["category"] == cat]
            row["n"] = len(mine)
            waits = [w for r in mine for w in r["waits_ms"] if w is not None]
            row[f"{p.name}:cut"] = sum(len(r["cutoffs"]) for r in mine)
            row[f"{p.name}:p50"] = percentile(waits, 50)
        rows.append(row)
    print_table(rows, list(rows[0]))
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    settings = Settings()
    config = segmenter_config(settings)
    lexical = EndOfTurn.from_settings(replace(settings, turn_detector="lexical"))
    silence = EndOfTurn.from_settings(replace(settings, turn_detector="silence"))
    voices_asked = [v.strip() for v in args.voices.split(",") if v.strip()]
    voices = [VOICE_ALIASES.get(v, v) for v in voices_asked]
    speeds = [float(s) for s in args.speeds.split(",") if s.strip()]
    synth = EspeakVoices()
    unknown = [v for v in voices if not synth.known(v)]
    if unknown:
        raise SystemExit(f"espeak-ng has no voice {unknown} (it would fall back to en-us)")

    renders = [
        render(t, v, s, synth) for t, v, s in assign(TIMELINES, voices, speeds, args.all_voices)
    ]
    speech_s = sum(sum(s.end - s.start for s in r.spans) for r in renders)
    audio_s = sum(len(r.pcm) / 2 / RATE for r in renders)
    print(
        f"{len(renders)} timelines ({len(TIMELINES)} scripts; voices {','.join(voices)}; "
        f"speeds {','.join(f'{s:g}' for s in speeds)}), {speech_s:.0f} s of speech, "
        f"{audio_s:.0f} s of audio; VAD {args.vad}"
    )
    print(
        f"silence: {silence.default_wait_ms} ms; lexical: {lexical.min_wait_ms}/"
        f"{lexical.default_wait_ms}/{lexical.max_wait_ms} ms (finished/unsure/unfinished); "
        f"transcripts {args.stt_delay_ms:g} ms after each pause"
    )

    policies = [
        Policy("silence", silence),
        Policy("lexical", lexical, oracle("written")),
        Policy("lexical-bare", lexical, oracle("bare")),
        Policy(
            f"lexical-max{settings.turn_max_speculative}",
            lexical,
            oracle("written"),
            max_speculative=settings.turn_max_speculative,
        ),
    ]
    ps: PocketsphinxHear | None = None
    if args.stt == "pocketsphinx":
        ps = PocketsphinxHear()
        await ps.stt.warm_up()
        policies.append(Policy("lexical-pocketsphinx", lexical, ps))
    common: dict[str, Any] = {
        "config": config,
        "stt_delay_ms": args.stt_delay_ms,
        "barge_in_min_ms": settings.barge_in_min_ms,
        "vad": args.vad,
    }
    try:
        await run_policies(renders, policies, **common)
    finally:
        if ps is not None:
            await ps.stt.close()

    rows = [summarize(p.name, p.results) for p in policies]
    print(
        "\nwaits in ms from the true end of speech to the commit; complete = sentences said "
        "in one go (categories a, d); all = every labelled turn"
    )
    print_table(rows, TABLE)
    print("\ncut-offs and wait p50 by category")
    category_rows = print_category_table(policies)

    print(f"\ngoals (lexical rows; transcripts {args.stt_delay_ms:g} ms after each pause):")
    goal_out = {}
    for p, row in zip(policies, rows, strict=True):
        if not p.end_of_turn.reads_words:
            continue
        g = goals(row)
        goal_out[p.name] = g
        print(
            f"  {p.name}: complete-sentence wait p50 {g['wait_p50_ms']} ms <= "
            f"{GOAL_WAIT_P50_MS:g}: {'MET' if g['wait_p50_met'] else 'NOT MET'} "
            f"(silence: {rows[0]['complete_p50']} ms); cut-offs with pauses <= "
            f"{GOAL_MAX_PAUSE_MS} ms after an unfinished clause ({row['goal_set_timelines']} "
            f"timelines): {g['cutoffs_goal_set']}: {'MET' if g['no_cutoffs_met'] else 'NOT MET'}"
        )
    print(
        f"  the segmenter's end of speech after the true end, p50: "
        f"{rows[0]['vad_tail_p50']} ms; the policies count their waits from there"
    )

    for p in policies[1:]:
        failed = failures(p.results)
        print(f"\n{p.name}: {len(failed)} timelines cut, split or merged")
        for r in failed:
            print("\n".join(describe_failure(r)))

    sweep = []
    delays = [float(d) for d in args.sweep_delays.split(",") if d.strip()]
    min_waits = [int(w) for w in args.sweep_min_waits.split(",") if w.strip()]
    if delays and min_waits:
        print(
            "\nwhat if: lexical (oracle, written) by transcript delay and shortest wait "
            "(VAD_SILENCE_MS; the pause is reported PAUSE_REPORT_MS after the last sound)"
        )
        for min_wait in min_waits:
            for delay in delays:
                eot = replace(lexical, min_wait_ms=min_wait)
                p = Policy(f"lexical min{min_wait}@{delay:g}", eot, oracle("written"))
                await run_policies(renders, [p], **{**common, "stt_delay_ms": delay})
                row = summarize(p.name, p.results)
                sweep.append({"min_wait_ms": min_wait, "stt_delay_ms": delay, **row})
        print_table(sweep, SWEEP_TABLE)

    elapsed = time.perf_counter() - started
    out: dict[str, Any] = {
        "settings": {
            "stt_delay_ms": args.stt_delay_ms,
            "voices": voices,
            "speeds": speeds,
            "all_voices": args.all_voices,
            "stt": args.stt,
            "segmenter": asdict(config),
            "silence": str(silence),
            "lexical": str(lexical),
        },
        "rows": rows,
        "goals": goal_out,
        "categories": category_rows,
        "sweep": sweep,
        "timelines": {p.name: p.results for p in policies},
        "run_s": elapsed,
    }
    if ps is not None:
        out["pocketsphinx_decode_ms"] = {
            "n": len(ps.decode_ms),
            "p50": percentile(ps.decode_ms, 50),
            "p95": percentile(ps.decode_ms, 95),
        }
        print(
            f"\npocketsphinx: {len(ps.decode_ms)} pause transcriptions, real decode p50 "
            f"{percentile(ps.decode_ms, 50):.0f} ms, p95 {percentile(ps.decode_ms, 95):.0f} ms "
            f"(the table assumes {args.stt_delay_ms:g} ms)"
        )
    print(f"\nrun time {elapsed:.1f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--stt-delay-ms", type=float, default=150.0)
    parser.add_argument(
        "--vad",
        choices=("silero", "webrtcvad"),
        default=Settings().vad_provider,
        help="the voice detector (default: the server's)",
    )
    parser.add_argument("--voices", default=DEFAULT_VOICES)
    parser.add_argument("--speeds", default="0.9,1.0,1.15", help="tape speed factors")
    parser.add_argument("--all-voices", action="store_true", help="every timeline in every voice")
    parser.add_argument(
        "--stt",
        choices=("oracle", "pocketsphinx"),
        default="oracle",
        help="pocketsphinx: add a row transcribed by the embedded engine",
    )
    parser.add_argument(
        "--sweep-delays",
        default="0,50,100,150,300",
        help="transcript delays to sweep for lexical ('' to skip)",
    )
    parser.add_argument(
        "--sweep-min-waits",
        default="100,150,200",
        help="lexical shortest waits (ms) to sweep with those delays",
    )
    args = parser.parse_args()
    data = asyncio.run(run(args))
    name = "turns" if args.stt == "oracle" else f"turns_{args.stt}"
    print(f"wrote {write_results(name, data)}")


if __name__ == "__main__":
    main()
