"""bench.turns' own measuring, on tiny timelines of tones with a stand-in VAD
(a frame is voiced when it is loud), so every time is exact."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.turns import (
    ORACLE_TAIL_S,
    T0,
    PauseContext,
    Rendered,
    oracle,
    oracle_text,
    render,
    run_timeline,
    score,
    tl,
)
from media_server.listening.end_of_turn import EndOfTurn
from media_server.listening.segmenter import SegmenterConfig
from tests.audio_fixtures import silence, sine

SILENCE = EndOfTurn("silence", 200, 500, 1800)
LEXICAL = EndOfTurn("lexical", 200, 500, 1800)
SECONDS = {"I'd like a table for": 1.0, "Friday evening.": 0.6, "Can I pay by card?": 0.8}


def tone_voice(text: str, voice: str, speed: float) -> bytes:
    """A loud tone as long as the text's entry, and a quiet tail to trim."""
    return sine(SECONDS[text], 220.0) + silence(0.2)


def loud(frame: bytes) -> bool:
    return int(np.max(np.abs(np.frombuffer(frame, "<i2").astype(np.int32)))) > 5000


UNFINISHED = tl("table-for", "unfinished", ("I'd like a table for", 800), "Friday evening.")
QUESTION = tl("pay-by-card", "complete", "Can I pay by card?")


def play(timeline, end_of_turn: EndOfTurn, *, stt_delay_ms: float = 0.0) -> dict:
    rendered = render(timeline, "en-us", 1.0, tone_voice)
    hear = oracle("written") if end_of_turn.reads_words else None
    return asyncio.run(
        run_timeline(
            rendered,
            end_of_turn,
            hear,
            config=SegmenterConfig(),
            stt_delay_ms=stt_delay_ms,
            is_speech=loud,
        )
    )


def test_the_true_end_of_speech_excludes_the_voices_trailing_silence() -> None:
    rendered = render(UNFINISHED, "en-us", 1.0, tone_voice)
    first, second = rendered.spans
    assert (first.start - T0, first.end - T0) == pytest.approx((0.5, 1.5))
    assert (second.start - T0, second.end - T0) == pytest.approx((2.3, 2.9))
    assert rendered.turn_spans() == [(first.start, second.end)]


def test_a_fixed_pause_cuts_an_unfinished_sentence_and_that_counts_as_one() -> None:
    r = play(UNFINISHED, SILENCE)
    assert (r["expected"], r["got"], r["split"], r["merged"]) == (1, 2, True, False)
    (cut,) = r["cutoffs"]
    assert cut["after"] == "I'd like a table for"
    assert cut["at"] == 1500 + 500  # ms on the timeline: 500 ms after "for"
    assert r["waits_ms"] == [pytest.approx(500)]  # the end of "Friday evening."


def test_reading_the_sentence_waits_through_the_pause_and_ends_200_ms_after_speech() -> None:
    r = play(UNFINISHED, LEXICAL)
    assert (r["got"], r["cutoffs"]) == (1, [])
    assert r["waits_ms"] == [pytest.approx(200)]
    first, last = r["pauses"]
    assert first["text"] == "I'd like a table for" and first["reading"][0] == "incomplete"
    assert last["text"] == "I'd like a table for Friday evening."
    assert r["commits"][0]["reading"][0] == "complete"


def test_a_late_transcript_delays_the_end_by_its_lateness_on_the_frame_grid() -> None:
    # Pause reported 80 ms after speech (PAUSE_REPORT_MS), words back 150 ms
    # later: 230 ms, seen at the next 20 ms frame.
    r = play(QUESTION, LEXICAL, stt_delay_ms=150)
    assert r["waits_ms"] == [pytest.approx(240)]
    assert play(QUESTION, SILENCE)["waits_ms"] == [pytest.approx(500)]


def test_score_counts_cut_offs_merges_and_waits_from_the_true_end() -> None:
    spans = [(10.0, 11.0), (13.5, 14.0)]
    merged = score(spans, [14.5])
    assert (merged["got"], merged["merged"], merged["cutoffs"]) == (1, True, [])
    assert merged["waits_ms"] == [None, pytest.approx(500)]
    cut = score(spans, [10.6, 11.2, 14.2])
    assert cut["cutoffs"] == [{"turn": 0, "at": 10.6}]
    assert cut["split"] and cut["waits_ms"] == [pytest.approx(200), pytest.approx(200)]


def test_the_oracle_labels_only_whole_segments_of_the_turn_so_far() -> None:
    rendered: Rendered = render(UNFINISHED, "en-us", 1.0, tone_voice)

    def at(t: float, since: float = float("-inf"), style: str = "written") -> str | None:
        return oracle_text(PauseContext(rendered, b"", T0 + t, since), style)

    assert at(1.6) == "I'd like a table for"
    assert at(1.0) is None  # inside the first segment
    # A pause just before a segment's last sound (its soft tail is below the
    # level that times pauses) hears the whole segment, as a recognizer would.
    end = rendered.spans[0].end - T0
    assert at(end - ORACLE_TAIL_S / 2) == "I'd like a table for"
    assert at(end - ORACLE_TAIL_S * 2) is None
    assert at(3.1, style="bare") == "i'd like a table for friday evening"
    assert at(3.1, since=T0 + 2.0) == "Friday evening."  # after a commit at 2.0 s
