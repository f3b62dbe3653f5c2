"""How fast the agent answers: end of speech -> first reply audio, over loopback.

A Python aiortc client plays speech into the server (a separate process) and
times, per turn, the gap between the last voiced frame it sent and the first
voiced frame of the reply it received. With ``--engines fake`` (default) the
server talks to the loopback fakes of OpenAI and ElevenLabs at fixed
latencies, so the server's own share can be isolated:

    server-added = measured - end-of-turn wait - fake STT/LLM/TTS delays
                   - leading silence of the fake's audio - transport round trip

The end-of-turn wait is what the segmenter needs for this utterance (the
configured hangover plus webrtcvad's own smoothing), computed offline with
the same Segmenter; the transport round trip (Opus, jitter buffers) is
measured in the same run against a bare aiortc echo server. Short (10-token)
and long (300-token) replies are measured: first audio must not depend on
the reply's length.

With ``--engines embedded`` the server runs pocketsphinx, the scripted agent
and espeak-ng: the out-of-the-box experience; it also reports the server's
CPU per session-second.

    uv run python -m bench.latency [--engines fake|embedded] [--turns 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    cpu_seconds,
    fakes_env,
    fakes_process,
    percentile,
    print_table,
    run_bench,
    server_is_speech,
    server_process,
)
from bench.phone_latency import AUTH_TOKEN, phone_turns
from media_server.audio.mp3 import Mp3Decoder
from media_server.audio.pcm import PcmResampler
from media_server.listening.segmenter import Segmenter, SegmenterConfig, SpeechEnded
from media_server.text import SentenceChunker
from tests.audio_fixtures import speech_48k
from tests.fakes.mp3_fixture import mp3_bytes
from tests.fakes.openai_fake import tokens_of
from tests.voice_client import VOICED_RMS, VoiceClient

UTTERANCE = "Hello, I would like to book an appointment for tomorrow morning please."
HANGOVER_MS = 500
STT_DELAY_S = 0.150
LLM_FIRST_BYTE_S = 0.150
TOKEN_DELAY_S = 0.020  # 50 tokens/s
TTS_FIRST_BYTE_S = 0.100
# Short sentences, so both replies open with the same first chunk: only the
# length of the rest differs between the short and the long run.
REPLY_SENTENCE = "Sure, I can help you with that. "

REPLY_TOKENS = (10, 300)
# One agent per reply length; the fake answers by the marker in the prompt.
BENCH_AGENTS = "".join(
    f"""
[agents.bench{n}]
name = "Bench {n}"
description = "Latency benchmark agent, {n}-token replies"
prompt = "You are a benchmark. reply-{n}-tokens"
max_tokens = 1000
"""
    for n in REPLY_TOKENS
)


def reply_of(tokens: int) -> str:
    words: list[str] = []
    while len(words) < tokens:
        words.extend(REPLY_SENTENCE.split())
    return " ".join(words[:tokens]).rstrip(",") + "."


def tokens_until_first_chunk(reply: str) -> int:
    """How many streamed tokens the chunker needs before its first TTS piece."""
    chunker = SentenceChunker()
    tokens = tokens_of(reply)
    for i, token in enumerate(tokens, 1):
        if chunker.feed(token):
            return i
    return len(tokens)


def frame_rms(pcm: bytes, rate: int) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    n = rate // 50
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    return np.sqrt(np.mean(frames * frames, axis=1))


def trailing_silence_s(pcm48k: bytes) -> float:
    voiced = np.nonzero(frame_rms(pcm48k, 48000) > VOICED_RMS)[0]
    total = len(pcm48k) / 2 / 48000
    return total - (voiced[-1] + 1) * 0.02 if len(voiced) else 0.0


def end_of_turn_wait_s(pcm48k: bytes, silence_ms: int) -> float:
    """Time from the last voiced frame to the segmenter's end of turn."""
    resampler = PcmResampler(48000, 1, 16000)
    pcm16 = resampler.convert(pcm48k) + resampler.flush() + bytes(2 * 16000 * 3)
    segmenter = Segmenter(SegmenterConfig(silence_ms=silence_ms), is_speech=server_is_speech())
    frame = 640
    for i in range(len(pcm16) // frame):
        for event in segmenter.feed(pcm16[i * frame : (i + 1) * frame], (i + 1) * 0.02):
            if isinstance(event, SpeechEnded):
                speech_s = len(pcm48k) / 2 / 48000 - trailing_silence_s(pcm48k)
                return event.utterance.turn_ended_at - speech_s
    raise RuntimeError("segmenter never ended the turn")


def leading_silence_s(mp3: bytes) -> float:
    decoder = Mp3Decoder(out_rate=48000)
    pcm = decoder.feed(mp3) + decoder.flush()
    voiced = np.nonzero(frame_rms(pcm, 48000) > VOICED_RMS)[0]
    return voiced[0] * 0.02 if len(voiced) else 0.0


async def transport_round_trip(rounds: int = 5, cpus: set[int] | None = None) -> list[float]:
    """First voiced mic frame sent -> the same audio back, through a bare aiortc
    echo server (pinned to ``cpus`` when given, like the server it stands for)."""
    tone = speech_48k("test")
    voiced = np.nonzero(frame_rms(tone, 48000) > VOICED_RMS)[0]
    lead_in = voiced[0] * 0.02 if len(voiced) else 0.0
    samples: list[float] = []
    with server_process(["-m", "bench.echo_server"], cpus=cpus) as echo:
        await echo.wait_ready()
        client = VoiceClient(echo.base_url)
        try:
            await client.connect("echo")
            await asyncio.sleep(1.0)
            for _ in range(rounds):
                first_out = client.mic.on_first_audio()
                await client.mic.write(tone)
                client.mic.end_of_reply()
                # Time from the first *voiced* frame: the speech opens quietly.
                sent_at = await asyncio.wait_for(first_out, 5) + lead_in
                samples.append(await client.first_voiced_after(sent_at, timeout=5) - sent_at)
                await asyncio.sleep(1.5)
        finally:
            await client.close()
    return samples


async def measure_turns(
    client: VoiceClient, speech: bytes, turns: int, interrupt_after: bool
) -> list[dict[str, Any]]:
    tail = trailing_silence_s(speech)
    results = []
    for _ in range(turns):
        since = len(client.events)
        speech_end = await client.say(speech) - tail
        metrics = (
            await client.wait_for("turn_metrics", since=since, timeout=60)
            if not (interrupt_after)
            else None
        )
        first_voiced = await client.first_voiced_after(speech_end)
        if interrupt_after:
            client.send({"type": "interrupt"})
            metrics = (
                await client.wait_for("turn_metrics", since=since, timeout=30)
                if any(e["type"] == "turn_metrics" for e in client.events[since:])
                else None
            )
        await client.wait_for("status_update", since=since + 1, status="idle", timeout=60)
        await asyncio.sleep(0.8)  # let the reply's tail and jitter buffers drain
        results.append(
            {"e2e_ms": (first_voiced - speech_end) * 1000, "server_metrics": metrics or {}}
        )
    return results


async def run_fake(turns: int) -> dict[str, Any]:
    rtts = await transport_round_trip()
    rtt = statistics.median(rtts)
    speech = speech_48k(UTTERANCE)
    eot = end_of_turn_wait_s(speech, HANGOVER_MS)
    lead = leading_silence_s(mp3_bytes(1.0))
    # The fakes run in their own process: their CPU must not count as ours.
    fakes = fakes_process(
        f"--first-byte-delay={STT_DELAY_S}",
        f"--token-delay={TOKEN_DELAY_S}",
        f"--tts-delay={TTS_FIRST_BYTE_S}",
        "--replies",
        json.dumps({f"reply-{n}-tokens": reply_of(n) for n in REPLY_TOKENS}),
    )
    rows = []
    out: dict[str, Any] = {
        "transport_round_trip_ms": [r * 1000 for r in rtts],
        "end_of_turn_wait_ms": eot * 1000,
        "hangover_ms": HANGOVER_MS,
        "tts_leading_silence_ms": lead * 1000,
        "fixed": {
            "stt_s": STT_DELAY_S,
            "llm_first_byte_s": LLM_FIRST_BYTE_S,
            "token_s": TOKEN_DELAY_S,
            "tts_first_byte_s": TTS_FIRST_BYTE_S,
        },
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents.toml"
        agents.write_text(BENCH_AGENTS)
        async with fakes as urls:
            # The fixed-pause end of turn: this bench measures what the
            # server adds after the turn ends, so the pause must be the one
            # computed offline above (bench.turns measures the end of turn).
            env = {
                **fakes_env(urls),
                "TURN_DETECTOR": "silence",
                "TURN_SILENCE_MS": str(HANGOVER_MS),
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            }
            with server_process(["-m", "media_server", "--agents-file", str(agents)], env) as srv:
                await srv.wait_ready()
                for tokens in REPLY_TOKENS:
                    client = VoiceClient(srv.base_url)
                    try:
                        await client.connect(f"bench{tokens}")
                        await asyncio.sleep(0.5)
                        reply = reply_of(tokens)
                        # The fake sends token k at first_byte + k * token delay; the
                        # STT request pays first_byte too (same fake, same knob).
                        k = tokens_until_first_chunk(reply)
                        fixed = STT_DELAY_S + LLM_FIRST_BYTE_S + k * TOKEN_DELAY_S
                        fixed += TTS_FIRST_BYTE_S + lead + eot + rtt
                        turns_out = await measure_turns(client, speech, turns, tokens > 50)
                        added = [t["e2e_ms"] - fixed * 1000 for t in turns_out]
                        e2e = [t["e2e_ms"] for t in turns_out]
                        row = {
                            "reply_tokens": tokens,
                            "turns": len(turns_out),
                            "e2e_p50": percentile(e2e, 50),
                            "e2e_p95": percentile(e2e, 95),
                            "fixed_ms": fixed * 1000,
                            "added_p50": percentile(added, 50),
                            "added_p95": percentile(added, 95),
                        }
                        rows.append({"path": "webrtc", **row})
                        out["runs"][str(tokens)] = {**row, "turns_detail": turns_out}
                    finally:
                        await client.close()
                # The same short turns on a phone line (Twilio Media Streams, μ-law).
                tokens = REPLY_TOKENS[0]
                e2e = await phone_turns(
                    srv.base_url, f"bench{tokens}", speech, trailing_silence_s(speech), turns
                )
                # No Opus or jitter buffer on this path: its fixed part has no rtt.
                k = tokens_until_first_chunk(reply_of(tokens))
                fixed_phone = STT_DELAY_S + LLM_FIRST_BYTE_S + k * TOKEN_DELAY_S
                fixed_phone += TTS_FIRST_BYTE_S + lead + eot
                row = {
                    "path": "phone",
                    "reply_tokens": tokens,
                    "turns": len(e2e),
                    "e2e_p50": percentile(e2e, 50),
                    "e2e_p95": percentile(e2e, 95),
                    "fixed_ms": fixed_phone * 1000,
                    "added_p50": percentile([e - fixed_phone * 1000 for e in e2e], 50),
                    "added_p95": percentile([e - fixed_phone * 1000 for e in e2e], 95),
                }
                rows.append(row)
                out["runs"]["phone"] = {**row, "turns_detail": e2e}
    print(
        f"transport round trip (echo) median {rtt * 1000:.1f} ms; "
        f"end-of-turn wait {eot * 1000:.0f} ms (hangover {HANGOVER_MS}); "
        f"fake TTS leading silence {lead * 1000:.0f} ms"
    )
    columns = ["path", "reply_tokens", "turns", "e2e_p50", "e2e_p95", "fixed_ms"]
    print_table(rows, [*columns, "added_p50", "added_p95"])
    out["phone_vs_webrtc_e2e_p50"] = rows[-1]["e2e_p50"] / rows[0]["e2e_p50"]
    print(f"phone / webrtc voice-to-voice (p50, 10 tokens): {out['phone_vs_webrtc_e2e_p50']:.2f}")
    if len(rows) >= 2:
        delta = rows[1]["e2e_p50"] - rows[0]["e2e_p50"]
        out["first_audio_delta_long_vs_short_ms"] = delta
        print(f"first audio, 300 vs 10 tokens: {delta:+.1f} ms (p50)")
    return out


async def run_embedded(turns: int) -> dict[str, Any]:
    speech = speech_48k(UTTERANCE)
    with server_process(["-m", "media_server"], {"STT_PROVIDER": "pocketsphinx"}) as srv:
        await srv.wait_ready()
        client = VoiceClient(srv.base_url)
        try:
            cpu0, t0 = cpu_seconds(srv.pid), time.monotonic()
            await client.connect("receptionist")
            results = await measure_turns(client, speech, turns, interrupt_after=False)
            cpu = cpu_seconds(srv.pid) - cpu0
            wall = time.monotonic() - t0
        finally:
            await client.close()
    e2e = [r["e2e_ms"] for r in results]
    stages = {
        name: percentile([r["server_metrics"].get(name) or 0 for r in results], 50)
        for name in ("transcript_ms", "first_token_ms", "first_tts_byte_ms", "first_audio_ms")
    }
    row = {
        "turns": len(results),
        "e2e_p50": percentile(e2e, 50),
        "e2e_p95": percentile(e2e, 95),
        **stages,
        "cpu_ms_per_s": cpu / wall * 1000,
    }
    print("embedded engines (pocketsphinx, scripted, espeak-ng); ms from end of speech")
    print_table([row], list(row))
    return {"row": row, "turns_detail": results, "session_wall_s": wall, "server_cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", choices=("fake", "embedded"), default="fake")
    parser.add_argument("--turns", type=int, default=8)
    args = parser.parse_args()
    runner = run_fake if args.engines == "fake" else run_embedded
    run_bench(f"latency_{args.engines}", runner, args.turns)


if __name__ == "__main__":
    main()
