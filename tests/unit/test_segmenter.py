"""Segmenter: turn start/end timing, pre-roll, blips, cuts, reset.

Most tests replace webrtcvad with an exact classifier (a frame is voiced when
it is loud) so frame-level timings can be asserted exactly; the webrtcvad tests
derive their expectation from a second webrtcvad instance fed the same frames.
"""

from __future__ import annotations

import numpy as np
import pytest
import webrtcvad

from media_server.audio.dbfs import peak_dbfs
from media_server.listening.segmenter import (
    Segmenter,
    SegmenterConfig,
    SpeechDropped,
    SpeechEnded,
    SpeechStarted,
)
from tests.audio_fixtures import chunks, silence, sine, speech_like

RATE = 16000
BPS = RATE * 2  # bytes per second
FRAME = 640  # 20 ms at 16 kHz
T0 = 1000.0  # an arbitrary clock origin, so times are not accidentally 0


def loud(frame: bytes) -> bool:
    """Exact stand-in VAD: voiced when any sample exceeds ~-16 dBFS."""
    x = np.frombuffer(frame, dtype="<i2")
    return int(np.max(np.abs(x.astype(np.int32)))) > 5000


def run(seg: Segmenter, pcm: bytes, chunk: int = FRAME, t0: float = T0) -> list:
    """Feed ``pcm`` in ``chunk``-byte pieces with exact end-of-chunk times."""
    events = []
    sent = 0
    for piece in chunks(pcm, chunk):
        sent += len(piece)
        for ev in seg.feed(piece, t0 + sent / BPS):
            events.append(ev)
    return events


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


# -- timing -------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [FRAME, 333, 4001])  # odd sizes exercise the carry
def test_start_and_end_times_exact(chunk: int) -> None:
    cfg = SegmenterConfig(silence_ms=500, preroll_ms=300, tail_ms=200)
    seg = Segmenter(cfg, is_speech=loud)
    pcm = silence(1.0) + speech_like(1.0) + silence(2.0)
    events = run(seg, pcm, chunk)

    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started, ended = events
    assert started.at == pytest.approx(T0 + 1.0, abs=1e-6)
    utt = ended.utterance
    assert utt.speech_ended_at == pytest.approx(T0 + 2.0, abs=1e-6)
    # The hangover is frame-aligned, so the end fires exactly silence_ms later.
    assert utt.turn_ended_at == pytest.approx(T0 + 2.5, abs=1e-6)
    assert utt.sample_rate == RATE
    # 300 ms pre-roll + 1 s speech + 200 ms tail.
    assert len(utt.pcm) == int(1.5 * BPS)
    assert utt.pcm[int(0.3 * BPS) : int(1.3 * BPS)] == speech_like(1.0)
    assert utt.peak_dbfs == pytest.approx(20 * np.log10(0.3), abs=0.1)
    assert not seg.in_speech


@pytest.mark.parametrize("silence_ms", [200, 500, 800])
def test_end_within_one_frame_of_hangover_real_vad(silence_ms: int) -> None:
    cfg = SegmenterConfig(aggressiveness=2, silence_ms=silence_ms)
    seg = Segmenter(cfg)
    pcm = silence(1.0) + speech_like(1.5) + silence(2.0)
    events = run(seg, pcm)

    # What webrtcvad itself calls voiced, frame by frame.
    ref = webrtcvad.Vad(2)
    voiced = [ref.is_speech(f, RATE) for f in chunks(pcm, FRAME)]
    first = voiced.index(True)
    last = len(voiced) - 1 - voiced[::-1].index(True)
    last_voiced_end = T0 + (last + 1) * 0.02

    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[0].at == pytest.approx(T0 + first * 0.02, abs=1e-6)
    assert abs(events[0].at - (T0 + 1.0)) <= 0.02 + 1e-6  # the tone starts at 1.0 s
    utt = events[1].utterance
    assert abs(utt.turn_ended_at - (last_voiced_end + silence_ms / 1000)) <= 0.02
    # webrtcvad's own smoothing lags the real end of sound by a few frames;
    # the end of speech is taken from the level instead: the sound's end.
    assert last_voiced_end - (T0 + 2.5) >= 0.06
    assert utt.speech_ended_at == pytest.approx(T0 + 2.5, abs=0.02 + 1e-6)


def test_start_needs_start_ms_of_voiced_audio() -> None:
    cfg = SegmenterConfig(start_ms=60)
    seg = Segmenter(cfg, is_speech=loud)
    # 40 ms voiced, then nothing: not a start (window of 120 ms needs 60 ms).
    assert run(seg, silence(0.2) + speech_like(0.04) + silence(0.3)) == []
    assert not seg.in_speech
    events = run(seg, speech_like(0.06), t0=T0 + 10)
    assert of(events, SpeechStarted) == [SpeechStarted(at=pytest.approx(T0 + 10))]
    assert seg.in_speech


def test_start_tolerates_one_gap_frame_within_window() -> None:
    seg = Segmenter(SegmenterConfig(start_ms=60), is_speech=loud)
    pcm = silence(0.2) + speech_like(0.04) + silence(0.02) + speech_like(0.02)
    events = run(seg, pcm)
    assert of(events, SpeechStarted) == [SpeechStarted(at=pytest.approx(T0 + 0.2))]
    assert seg.speech_ms == 60


# -- pre-roll -------------------------------------------------------------------


def test_preroll_is_the_audio_right_before_the_first_voiced_frame() -> None:
    cfg = SegmenterConfig(preroll_ms=300, tail_ms=0, silence_ms=300)
    seg = Segmenter(cfg, is_speech=loud)
    quiet = sine(1.0, 200, amplitude=0.01)  # non-voiced for `loud`, but not zeros
    pcm = quiet + speech_like(0.6) + silence(0.5)
    (ended,) = of(run(seg, pcm, chunk=1000), SpeechEnded)
    utt = ended.utterance
    assert utt.pcm[: int(0.3 * BPS)] == quiet[-int(0.3 * BPS) :]
    assert utt.pcm[int(0.3 * BPS) :] == speech_like(0.6)


def test_preroll_shorter_when_less_audio_came_before() -> None:
    cfg = SegmenterConfig(preroll_ms=300, tail_ms=0)
    seg = Segmenter(cfg, is_speech=loud)
    (ended,) = of(run(seg, silence(0.1) + speech_like(0.5) + silence(1.0)), SpeechEnded)
    assert len(ended.utterance.pcm) == int(0.6 * BPS)


def test_tail_keeps_only_tail_ms_of_trailing_silence() -> None:
    cfg = SegmenterConfig(preroll_ms=0, tail_ms=100, silence_ms=500)
    seg = Segmenter(cfg, is_speech=loud)
    (ended,) = of(run(seg, speech_like(0.5) + silence(1.0)), SpeechEnded)
    assert len(ended.utterance.pcm) == int(0.6 * BPS)
    assert ended.utterance.pcm[-int(0.1 * BPS) :] == silence(0.1)


# -- blips ----------------------------------------------------------------------


@pytest.mark.parametrize(("speech_s", "kept"), [(0.10, False), (0.24, False), (0.26, True)])
def test_min_speech_boundary(speech_s: float, kept: bool) -> None:
    seg = Segmenter(SegmenterConfig(min_speech_ms=250), is_speech=loud)
    events = run(seg, silence(0.5) + speech_like(speech_s) + silence(1.0))
    assert of(events, SpeechStarted), "the blip should have started a turn"
    if kept:
        assert len(of(events, SpeechEnded)) == 1
        assert of(events, SpeechDropped) == []
    else:
        assert of(events, SpeechEnded) == []
        (dropped,) = of(events, SpeechDropped)
        assert dropped.reason == "too_short"
        assert dropped.at == pytest.approx(T0 + 0.5 + speech_s + 0.5, abs=1e-6)
    assert not seg.in_speech


def test_real_vad_drops_a_click_but_keeps_a_word() -> None:
    seg = Segmenter(SegmenterConfig())
    events = run(seg, silence(0.5) + speech_like(0.08) + silence(1.5))
    assert of(events, SpeechEnded) == []
    assert len(of(events, SpeechDropped)) == 1
    events = run(seg, speech_like(0.5) + silence(1.5), t0=T0 + 10)
    assert len(of(events, SpeechEnded)) == 1


def test_silence_never_starts_a_turn() -> None:
    seg = Segmenter(SegmenterConfig(aggressiveness=0))
    assert run(seg, silence(10.0)) == []
    assert not seg.in_speech


# -- long speech ----------------------------------------------------------------


def test_long_speech_is_cut_at_max_and_continues_as_new_turns() -> None:
    cfg = SegmenterConfig(max_utterance_s=2.0, preroll_ms=300, tail_ms=0)
    seg = Segmenter(cfg, is_speech=loud)
    events = run(seg, speech_like(5.0) + silence(1.0))
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStarted, SpeechEnded] * 3
    ends = [e.utterance for e in of(events, SpeechEnded)]
    assert [round(u.duration_s, 3) for u in ends] == [2.0, 2.0, 1.0]
    assert [e.at for e in of(events, SpeechStarted)] == pytest.approx([T0, T0 + 2.0, T0 + 4.0])
    assert ends[0].turn_ended_at == pytest.approx(T0 + 2.0)
    assert ends[2].turn_ended_at == pytest.approx(T0 + 5.5)
    # Nothing lost or duplicated across the cuts.
    assert b"".join(u.pcm for u in ends) == speech_like(5.0)


def test_cut_counts_preroll_against_the_maximum() -> None:
    cfg = SegmenterConfig(max_utterance_s=1.0, preroll_ms=300)
    seg = Segmenter(cfg, is_speech=loud)
    events = run(seg, silence(1.0) + speech_like(3.0))
    first = of(events, SpeechEnded)[0].utterance
    assert first.duration_s == pytest.approx(1.0)
    assert first.turn_ended_at == pytest.approx(T0 + 1.7)


# -- state ----------------------------------------------------------------------


def test_speech_ms_tracks_voiced_time_in_the_turn() -> None:
    seg = Segmenter(SegmenterConfig(), is_speech=loud)
    run(seg, silence(0.2) + speech_like(0.5))
    assert seg.in_speech
    assert seg.speech_ms == 500
    run(seg, silence(0.2), t0=T0 + 0.7)  # inside the hangover: no change
    assert seg.in_speech
    assert seg.speech_ms == 500
    run(seg, silence(0.4), t0=T0 + 0.9)
    assert not seg.in_speech
    assert seg.speech_ms == 0


def test_reset_forgets_turn_preroll_and_partial_frame() -> None:
    cfg = SegmenterConfig(preroll_ms=300, tail_ms=0)
    seg = Segmenter(cfg, is_speech=loud)
    seg.feed(sine(0.5, 200, amplitude=0.01) + speech_like(0.5) + b"\x01\x02\x03", T0)
    assert seg.in_speech
    seg.reset()
    assert not seg.in_speech
    assert seg.speech_ms == 0
    assert seg.feed(silence(1.0), T0 + 2) == []  # the old turn does not end
    events = run(seg, speech_like(0.5) + silence(1.0), t0=T0 + 3)
    (ended,) = of(events, SpeechEnded)
    # Pre-roll is the silence fed after reset, not the quiet tone from before it.
    assert ended.utterance.pcm == silence(0.3) + speech_like(0.5)


def test_memory_is_bounded_while_idle() -> None:
    seg = Segmenter(SegmenterConfig(preroll_ms=300), is_speech=loud)
    run(seg, sine(5.0, 200, amplitude=0.01))
    assert len(seg._history) <= 300 // 20 + 6


def test_peak_dbfs() -> None:
    assert peak_dbfs(silence(0.1)) == -120.0
    assert peak_dbfs(b"") == -120.0
    assert peak_dbfs(np.array([-32768], dtype="<i2").tobytes()) == pytest.approx(0.0)
    assert peak_dbfs(sine(0.1, 440, amplitude=0.5)) == pytest.approx(-6.02, abs=0.05)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 44100},
        {"frame_ms": 25},
        {"aggressiveness": 4},
        {"silence_ms": -1},
        {"silence_ms": 10},
        {"max_utterance_s": 0.01},
    ],
)
def test_bad_config_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SegmenterConfig(**kwargs)
