"""Offline voices side by side: what each costs a session, and how soon it speaks.

No server, no network. Each engine (espeak-ng; Piper with the voice from its
wheel, the ``piper`` extra) is built and warmed up in this process, then
asked for the same sentences through its provider, as a reply would:

- load: seconds to build and warm up, and the RSS it added (MB);
- first audio: ms from ``synthesize()`` to the first chunk, per sentence,
  median of the repeats; and for whole replies cut into pieces as the server
  cuts them (``first_audio_ms_reply``), with the silence a reply would have
  between pieces waiting for the next one's audio (``gaps_ms_per_reply``);
- CPU s per s of audio: this process's CPU (all threads) over the audio made;
- RTF: wall time over audio time, one reply at a time;
- busy: ``--concurrent`` replies at once (sessions answering together): the
  slowest one's first audio and gaps, and the wall time to make all of them;
- heard: the word error rate of the offline Whisper (tiny.en, numpy, without
  the agents' words as a prompt) on each voice saying ``bench.asr_corpus``'s
  utterances and held-out turns (52): how well a listener that never heard either voice before
  makes out the words (a proxy: no person listened).

    uv run python -m bench.offline_tts [--engines espeak,piper] [--repeats 5]
        [--concurrent 4] [--heard 52] [--quick]

``--quick``: 2 repeats, 10 utterances heard. Writes bench/results/offline_tts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from bench.common import print_table, rss_mb, self_cpu_seconds, write_results
from media_server.providers.base import TextToSpeech
from media_server.text import SentenceChunker

SENTENCES = {
    "short": "Hello!",
    "typical": "Sure, I can book you in for Tuesday at three thirty with Doctor Patel.",
    "long": (
        "Thank you for calling the clinic, where I can book, move or cancel an appointment, "
        "and tell you our opening hours from Monday to Friday."
    ),
}
# Whole replies, cut into pieces as the server cuts a streamed reply
# (text.SentenceChunker: the first piece ends at an opener's comma or a
# clause of four words or more); CPU per second of audio is measured on them.
REPLIES = (
    "Sure, I can book you in for Tuesday at three thirty with Doctor Patel. "
    "Would that work for you? If not, I also have Wednesday morning at nine.",
    "I'm sorry to hear your laptop keeps crashing. Let's try a few things together. "
    "First, can you tell me which version of the app you are running?",
    "Our team plan costs twelve dollars per user per month, billed yearly, "
    "and it includes unlimited projects. Would you like me to set up a demo?",
)


def build(name: str) -> TextToSpeech:
    if name == "piper":
        from media_server.providers.piper_tts import PiperTTS

        return PiperTTS()
    from media_server.providers.espeak_tts import EspeakTTS

    return EspeakTTS()


def pieces_of(reply: str) -> list[str]:
    chunker = SentenceChunker()
    return chunker.feed(reply) + chunker.flush()


async def say_reply(tts: TextToSpeech, reply: str) -> tuple[float, float, float, float]:
    """A reply piece by piece, as the server speaks it: each piece is asked
    for once the one before is made, and plays after the one before.
    (first audio s, wall s, audio s, silence s between pieces waiting for audio)."""
    start = time.perf_counter()
    first, _, audio = await speak(tts, (pieces := pieces_of(reply))[0])
    played_until = first + audio  # when the speaker runs out, from start
    gaps = 0.0
    for piece in pieces[1:]:
        _, _, seconds = await speak(tts, piece)
        ready = time.perf_counter() - start
        gaps += max(0.0, ready - played_until)
        played_until = max(ready, played_until) + seconds
        audio += seconds
    return first, time.perf_counter() - start, audio, gaps


async def speak(tts: TextToSpeech, text: str) -> tuple[float, float, float]:
    """(seconds to the first chunk, seconds in all, seconds of audio)."""
    start = time.perf_counter()
    first = 0.0
    samples = 0
    rate = 0
    async for chunk in tts.synthesize(text, "en-us"):
        if not first:
            first = time.perf_counter() - start
        samples += len(chunk.data) // 2
        rate = chunk.sample_rate
    return first, time.perf_counter() - start, samples / rate if rate else 0.0


def to_16k(pcm: bytes, rate: int) -> bytes:
    from media_server.audio.pcm import PcmResampler

    resampler = PcmResampler(rate, 1, 16000)
    return resampler.convert(pcm) + resampler.flush()


async def heard_wer(tts: TextToSpeech, count: int) -> float | None:
    """Whisper's word error rate on this voice saying ``count`` corpus utterances."""
    if count <= 0:
        return None
    import numpy as np

    from bench.asr_corpus import HELD_OUT_TURNS, UTTERANCES, word_errors
    from media_server.providers.whisper_model import WhisperModel
    from media_server.providers.whisper_stt import WINDOW_S

    model = WhisperModel(window_s=WINDOW_S, backend="numpy", domain_prompt=False)
    errors = words = 0
    texts = [text for _, text in UTTERANCES] + [said for _, _, said in HELD_OUT_TURNS]
    for text in texts[:count]:
        chunks = [c async for c in tts.synthesize(text.capitalize() + ".", "en-us")]
        pcm = to_16k(b"".join(c.data for c in chunks), chunks[0].sample_rate)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        heard = await asyncio.to_thread(model.transcribe, samples)
        e, n = word_errors(text, heard)
        errors, words = errors + e, words + n
    return errors / words


async def bench_engine(name: str, repeats: int, concurrent: int) -> dict[str, Any]:
    pid = os.getpid()
    rss0, t0 = rss_mb(pid), time.perf_counter()
    tts = build(name)
    try:
        await tts.warm_up()
        await speak(tts, "Warming up.")  # first-call costs (phonemizer, caches) out of the way
        load_s, load_mb = time.perf_counter() - t0, rss_mb(pid) - rss0
        row: dict[str, Any] = {"engine": name, "load_s": load_s, "load_rss_mb": load_mb}
        for label, text in SENTENCES.items():
            firsts = [(await speak(tts, text))[0] for _ in range(repeats)]
            row[f"first_audio_ms_{label}"] = statistics.median(firsts) * 1000
        cpu0 = self_cpu_seconds()
        wall = audio = 0.0
        firsts, gaps = [], []
        for _ in range(repeats):
            for reply in REPLIES:
                f, w, a, g = await say_reply(tts, reply)
                wall, audio = wall + w, audio + a
                firsts.append(f)
                gaps.append(g)
        row["cpu_s_per_audio_s"] = (self_cpu_seconds() - cpu0) / audio
        row["rtf"] = wall / audio
        row["first_audio_ms_reply"] = statistics.median(firsts) * 1000
        row["first_audio_ms_reply_max"] = max(firsts) * 1000
        row["gaps_ms_per_reply"] = statistics.mean(gaps) * 1000
        start = time.perf_counter()
        together = await asyncio.gather(
            *(say_reply(tts, REPLIES[i % len(REPLIES)]) for i in range(concurrent))
        )
        row["busy_replies"] = concurrent
        row["busy_first_audio_ms_max"] = max(t[0] for t in together) * 1000
        row["busy_gaps_ms_max"] = max(t[3] for t in together) * 1000
        row["busy_wall_s"] = time.perf_counter() - start
        row["rss_after_mb"] = rss_mb(pid) - rss0
        return row
    finally:
        await tts.close()


async def run(engines: list[str], repeats: int, concurrent: int, heard: int) -> dict[str, Any]:
    rows = [await bench_engine(name, repeats, concurrent) for name in engines]
    # After every engine's costs: Whisper's memory would blur the next load's RSS.
    for row in rows:
        tts = build(row["engine"])
        try:
            wer = await heard_wer(tts, heard)
        finally:
            await tts.close()
        row["heard_utterances"] = heard
        row["heard_wer_pct"] = None if wer is None else wer * 100
    # Small ratios as text: the shared table prints floats to one decimal.
    shown = [
        {**r, "cpu_s_per_audio_s": f"{r['cpu_s_per_audio_s']:.3f}", "rtf": f"{r['rtf']:.3f}"}
        for r in rows
    ]
    print_table(
        shown,
        [
            "engine",
            "load_s",
            "load_rss_mb",
            "first_audio_ms_short",
            "first_audio_ms_typical",
            "first_audio_ms_long",
            "first_audio_ms_reply",
            "gaps_ms_per_reply",
            "cpu_s_per_audio_s",
            "rtf",
            "busy_first_audio_ms_max",
            "busy_gaps_ms_max",
            "heard_wer_pct",
        ],
    )
    return {
        "sentences": SENTENCES,
        "replies": REPLIES,
        "repeats": repeats,
        "concurrent": concurrent,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="espeak,piper")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--heard", type=int, default=52, help="utterances Whisper hears (0: none)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    heard = min(args.heard, 10) if args.quick else args.heard
    data = asyncio.run(run(args.engines.split(","), repeats, args.concurrent, heard))
    print(f"wrote {write_results('offline_tts', data)}")


if __name__ == "__main__":
    main()
