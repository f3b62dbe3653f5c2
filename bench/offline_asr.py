"""Offline recognizers on synthetic speech: word error rate, speed,, agent understanding.

No server, no network. Every utterance of ``bench.asr_corpus`` (greetings,
names, dates and times, phone numbers, the scripted agents' intents, and the
held-out booking/support/sales turns) is spoken by espeak-ng:

- ``clean``: in each of ``--voices`` at normal speed;
- ``slow`` / ``fast``: sped down or up like a tape (0.85x, 1.2x);
- ``noise20`` / ``noise10``: white noise at 20 dB and 10 dB SNR;

each variant in one voice (turning through the voices by utterance), and
every engine hears the same audio in the same run. Per engine:

- WER: word edits / reference words, after ``asr_corpus.normalize`` on both
  sides (so "3:30" = "three thirty");
- RTF: wall time of a decode / audio length, one decode at a time; and CPU
  seconds (this process, all threads) per audio second;
- understood: of the held-out turns (clean), the share that the scripted
  agent answers as it answers the words actually said, not with its
  "didn't get that".

    uv run python -m bench.offline_asr [--engines pocketsphinx,whisper,whisper-ct2,...]
        [--voices en-us,en,en-us+f3,en-029] [--quick]

``--quick`` hears two voices and no variants. Writes bench/results/offline_asr.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per call, as the server

import argparse
import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.asr_corpus import HELD_OUT_TURNS, UTTERANCES, word_errors
from bench.common import print_table, write_results
from bench.turns import EspeakVoices
from media_server.providers.scripted.common import State, fallback
from media_server.providers.scripted.compose import compose_reply
from media_server.providers.whisper_stt import BEAM, WINDOW_S
from media_server.types import ChatMessage

RATE = 16000
VARIANTS = {
    "slow": (0.85, None),
    "fast": (1.2, None),
    "noise20": (1.0, 20.0),
    "noise10": (1.0, 10.0),
}
Recognizer = Callable[[bytes], str]


def pocketsphinx_engine() -> tuple[Recognizer, Callable[[], None]]:
    from media_server.providers.pocketsphinx_stt import PocketsphinxSTT
    from media_server.types import Utterance

    loop = asyncio.new_event_loop()
    stt = PocketsphinxSTT(max_streams=1)
    loop.run_until_complete(stt.warm_up())

    def recognize(pcm: bytes) -> str:
        return loop.run_until_complete(stt.transcribe(Utterance(pcm=pcm))).text

    def close() -> None:
        loop.run_until_complete(stt.close())
        loop.close()

    return recognize, close


def whisper_engine(
    window_s: float, backend: str, prompt: bool = False, beam: int = BEAM
) -> tuple[Recognizer, Callable[[], None]]:
    from media_server.providers.whisper_model import WhisperModel

    model = WhisperModel(window_s=window_s, backend=backend, domain_prompt=prompt, beam=beam)

    def recognize(pcm: bytes) -> str:
        return model.transcribe(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768)

    return recognize, lambda: None


ENGINES: dict[str, Callable[[], tuple[Recognizer, Callable[[], None]]]] = {
    "pocketsphinx": pocketsphinx_engine,
    "whisper": lambda: whisper_engine(WINDOW_S, "numpy", prompt=True),  # as the server runs it
    # WHISPER_BACKEND=ctranslate2 (needs: uv sync --extra ctranslate2)
    "whisper-ct2": lambda: whisper_engine(WINDOW_S, "ctranslate2", prompt=True),
    "whisper-no-prompt": lambda: whisper_engine(WINDOW_S, "numpy"),  # no domain words
    "whisper-greedy": lambda: whisper_engine(WINDOW_S, "numpy", prompt=True, beam=1),
    "whisper-30s": lambda: whisper_engine(30.0, "numpy", prompt=True),  # Whisper's own window
}


def with_noise(pcm: bytes, snr_db: float, seed: int) -> bytes:
    speech = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(speech**2))) or 1.0
    noise = np.random.default_rng(seed).normal(0, rms / 10 ** (snr_db / 20), speech.size)
    return np.clip(speech + noise, -32768, 32767).astype("<i2").tobytes()


def is_fallback(reply: str, persona: str) -> bool:
    """Whether ``reply`` is the agent's not-understood answer (any of its forms)."""
    forms = set()
    for asked in ("", "day", "time", "name", "phone"):
        st = State(persona)
        forms |= {fallback(st, asked) for _ in range(3)}
    return reply in forms or reply.startswith("Sorry, I didn't catch")


def agent_reply(persona: str, before: str, said: str) -> str:
    """The scripted agent's answer to ``said`` after ``before`` (a question, or
    "role: text || role: text" turns)."""
    history = []
    for part in filter(None, before.split(" || ")):
        role, _, text = part.partition(": ")
        if role not in ("user", "assistant") or not text:
            role, text = "assistant", part
        history.append(ChatMessage(role, text))  # type: ignore[arg-type]
    return compose_reply([*history, ChatMessage("user", said)], persona)


def build_items(voices: list[str], quick: bool) -> list[dict[str, Any]]:
    """Every (text, voice, condition) the engines will hear, with its audio."""
    speak = EspeakVoices()
    texts = [(cat, text, None) for cat, text in UTTERANCES] + [
        ("turn", said, (persona, question)) for persona, question, said in HELD_OUT_TURNS
    ]
    items = []
    for i, (cat, text, turn) in enumerate(texts):
        for voice in voices:
            items.append(
                dict(
                    cat=cat,
                    text=text,
                    turn=turn,
                    voice=voice,
                    cond="clean",
                    pcm=speak(text, voice, 1.0),
                )
            )
        if quick:
            continue
        for k, (cond, (speed, snr)) in enumerate(VARIANTS.items()):
            voice = voices[(i + k) % len(voices)]
            pcm = speak(text, voice, speed)
            if snr is not None:
                pcm = with_noise(pcm, snr, seed=i * 10 + k)
            items.append(dict(cat=cat, text=text, turn=turn, voice=voice, cond=cond, pcm=pcm))
    return items


def run_engine(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    recognize, close = ENGINES[name]()
    recognize(items[0]["pcm"])  # first call pays for lazy set-up; not measured
    errors: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wall = cpu = audio = 0.0
    understood = turns = 0
    misses: list[dict[str, str]] = []
    try:
        for item in items:
            t0, c0 = time.perf_counter(), time.process_time()
            heard = recognize(item["pcm"])
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            audio += len(item["pcm"]) / 2 / RATE
            edits, words = word_errors(item["text"], heard)
            for key in (item["cond"], f"{item['cond']}:{item['cat']}", f"voice:{item['voice']}"):
                if key.startswith("voice:") and item["cond"] != "clean":
                    continue
                errors[key][0] += edits
                errors[key][1] += words
            if item["turn"] and item["cond"] == "clean":
                persona, question = item["turn"]
                expected = agent_reply(persona, question, item["text"])
                got = agent_reply(persona, question, heard)
                turns += 1
                if got == expected and not is_fallback(expected, persona):
                    understood += 1
                else:
                    misses.append(dict(said=item["text"], heard=heard, voice=item["voice"]))
            item.setdefault("heard", {})[name] = heard
    finally:
        close()
    wer = {k: round(100 * e / max(w, 1), 1) for k, (e, w) in sorted(errors.items())}
    return {
        "engine": name,
        "wer_pct": wer,
        "rtf": round(wall / audio, 3),
        "cpu_per_audio_s": round(cpu / audio, 3),
        "ms_per_utterance": round(1000 * wall / len(items), 1),
        "understood_pct": round(100 * understood / max(turns, 1), 1),
        "turns": turns,
        "not_understood": misses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", default="pocketsphinx,whisper")
    ap.add_argument("--voices", default="en-us,en,en-us+f3,en-029")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    voices = args.voices.split(",")
    items = build_items(voices, args.quick)
    print(f"{len(items)} utterances, {sum(len(i['pcm']) for i in items) / 2 / RATE:.0f} s of audio")
    results = [run_engine(name, items) for name in args.engines.split(",")]
    conds = ["clean", *([] if args.quick else VARIANTS)]
    rows = [
        {
            "engine": r["engine"],
            **{f"WER {c} %": r["wer_pct"].get(c) for c in conds},
            "understood %": r["understood_pct"],
            "RTF": r["rtf"],
            "CPU s/s": r["cpu_per_audio_s"],
            "ms/utt": r["ms_per_utterance"],
        }
        for r in results
    ]
    print_table(rows, list(rows[0]))
    cats = sorted({i["cat"] for i in items})
    by_cat = [
        {
            "engine": r["engine"],
            **{c: r["wer_pct"].get(f"clean:{c}") for c in cats},
            **{v: r["wer_pct"].get(f"voice:{v}") for v in voices},
        }
        for r in results
    ]
    print("\nclean WER % by category and voice")
    print_table(by_cat, list(by_cat[0]))
    for r in results:
        r["rtf"] = float(f"{r['rtf']:.3f}")
    samples = [
        {"text": i["text"], "voice": i["voice"], "cond": i["cond"], "heard": i["heard"]}
        for i in items
    ]
    path = write_results("offline_asr", {"voices": voices, "results": results, "items": samples})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
