"""Barge-in: how soon the agent's voice stops once the person talks over it.

A Python aiortc client asks the voice server (a separate process, its
providers the loopback fakes in another) for a long reply (12 sentences of
1.5 s of audio each), waits until the agent is speaking plus ~1 s, then
speaks a short phrase. Per round it times, on the client's clock:

- ``stop``: first voiced frame of the person's speech handed to aiortc ->
  last voiced frame of the agent's reply received;
- ``event``: the same start -> arrival of the interrupted ``llm_response``
  event (the server's decision, seen over the data channel, which has no
  jitter buffer).

Both include transport: the speech travels to the server (Opus, its jitter
buffer) and the last reply frame travels back (Opus, the client's jitter
buffer). The transport round trip is measured in the same run against the
bare aiortc echo server (timed from the first voiced frame, see
``bench.latency.transport_round_trip``); one way is taken as half of it. The segmenter's
own decision time (webrtcvad needs ``BARGE_IN_MIN_MS`` of voiced frames of
this phrase) is computed offline with the same Segmenter, so what is left is
the server's reaction:

    stop - round trip - segmenter decision = server-added

The goal: reply audio stops within BARGE_IN_MIN_MS + 60 ms.

    uv run python -m bench.bargein [--rounds 8] [--barge-in-min-ms 200] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import numpy as np

from bench.common import (
    fakes_env,
    fakes_process,
    load_average,
    percentile,
    print_table,
    run_bench,
    server_is_speech,
    server_process,
)
from bench.latency import frame_rms, transport_round_trip
from media_server.audio.pcm import PcmResampler
from media_server.listening.segmenter import Segmenter, SegmenterConfig
from tests.audio_fixtures import speech_48k
from tests.voice_client import VOICED_RMS, VoiceClient

SERVER_CPU = 0
CLIENT_CPU = 1
PHRASE = "wait, stop, I have a question"
LONG_REPLY = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 13))
SENTENCE_AUDIO_S = 1.5
GOAL_MARGIN_MS = 60
DRAIN_S = 1.5  # after the phrase: let jitter buffers empty before reading the last frame


def leading_silence_s(pcm48k: bytes) -> float:
    voiced = np.nonzero(frame_rms(pcm48k, 48000) > VOICED_RMS)[0]
    return voiced[0] * 0.02 if len(voiced) else 0.0


def segmenter_decision_s(pcm48k: bytes, barge_in_min_ms: int) -> float:
    """First voiced frame -> the frame at which the session's barge-in rule
    (in speech and speech_ms >= the minimum) fires, for this phrase."""
    resampler = PcmResampler(48000, 1, 16000)
    pcm16 = resampler.convert(pcm48k) + resampler.flush()
    segmenter = Segmenter(SegmenterConfig(), is_speech=server_is_speech())
    frame = 640
    for i in range(len(pcm16) // frame):
        segmenter.feed(pcm16[i * frame : (i + 1) * frame], (i + 1) * 0.02)
        if segmenter.in_speech and segmenter.speech_ms >= barge_in_min_ms:
            return (i + 1) * 0.02 - leading_silence_s(pcm48k)
    raise RuntimeError("the phrase never reaches the barge-in minimum")


def event_index(client: VoiceClient, event: dict[str, Any]) -> int:
    return next(i for i, e in enumerate(client.events) if e is event)


async def one_round(client: VoiceClient, speech: bytes, lead_s: float) -> dict[str, Any]:
    since = len(client.events)
    client.send({"type": "text_input", "text": "Tell me everything"})
    await client.wait_for("status_update", since=since, status="speaking", timeout=20)
    await asyncio.sleep(1.0)  # the person hears a bit of it
    playing = client.voiced_frames_after(time.monotonic() - 0.5)
    first_out = client.mic.on_first_audio()
    speak = asyncio.create_task(client.say(speech))
    try:
        speech_start = await asyncio.wait_for(first_out, 5) + lead_s
        cut = await client.wait_for("llm_response", since=since, interrupted=True, timeout=10)
        cut_at = client.event_times[event_index(client, cut)]
        await speak
    finally:
        if not speak.done():
            speak.cancel()
    await asyncio.sleep(DRAIN_S)
    # The phrase itself is a turn (the fake transcribes it as ""): let it end.
    await client.wait_for("status_update", since=since, status="idle", timeout=20)
    voiced = [t for t in client.audio.voiced_times if t >= speech_start - 1.0]
    last_voiced = max(voiced) if voiced else float("nan")
    return {
        "stop_ms": (last_voiced - speech_start) * 1000,
        "event_ms": (cut_at - speech_start) * 1000,
        "last_frame_after_event_ms": (last_voiced - cut_at) * 1000,
        "reason": cut.get("reason"),
        "heard_chars": len(cut.get("text") or ""),
        "voiced_frames_in_last_0.5s_before": playing,
        # Anything voiced a second after the cut would be a new reply, not the tail.
        "voiced_frames_after_event_plus_1s": sum(1 for t in voiced if t > cut_at + 1.0),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = load_average()
    rtts = await transport_round_trip(rounds=args.rtt_rounds, cpus={SERVER_CPU})
    rtt_ms = statistics.median(rtts) * 1000
    speech = speech_48k(PHRASE)
    lead = leading_silence_s(speech)
    decision_ms = segmenter_decision_s(speech, args.barge_in_min_ms) * 1000
    # The fakes get their own process (on the clients' core, by inheritance):
    # run in this one, their SSE and MP3 work delayed the client's loop, and
    # with it the frame times this bench measures.
    fakes = fakes_process(
        "--transcript=",  # the phrase is a turn of its own: transcribed as ""
        "--first-byte-delay=0",
        "--token-delay=0.005",
        "--tts-delay=0",
        f"--tts-seconds={SENTENCE_AUDIO_S}",
        "--replies",
        json.dumps({"": LONG_REPLY}),  # "" is in every prompt: this reply for all
    )
    rounds: list[dict[str, Any]] = []
    async with fakes as urls:
        env = {
            **fakes_env(urls),
            "BARGE_IN_MIN_MS": str(args.barge_in_min_ms),
            "RATE_LIMIT_PER_MINUTE": "0",
        }
        with server_process(["-m", "media_server"], env, cpus={SERVER_CPU}) as srv:
            await srv.wait_ready()
            client = VoiceClient(srv.base_url)
            try:
                await client.connect("receptionist")
                await asyncio.sleep(0.5)
                for i in range(args.rounds):
                    result = await one_round(client, speech, lead)
                    rounds.append(result)
                    print(
                        f"round {i + 1}: stop {result['stop_ms']:.0f} ms, "
                        f"event {result['event_ms']:.0f} ms",
                        flush=True,
                    )
                    await asyncio.sleep(0.5)
            finally:
                await client.close()

    one_way = rtt_ms / 2
    goal = args.barge_in_min_ms + GOAL_MARGIN_MS
    stop = [r["stop_ms"] for r in rounds]
    event = [r["event_ms"] for r in rounds]

    def stats(name: str, values: list[float]) -> dict[str, Any]:
        return {"measure": name, "p50": percentile(values, 50), "p95": percentile(values, 95)}

    rows = [
        stats("stop (speech start -> last reply frame)", stop),
        stats("stop - one way (rtt/2)", [s - one_way for s in stop]),
        stats("stop - round trip", [s - rtt_ms for s in stop]),
        stats("stop - round trip - segmenter", [s - rtt_ms - decision_ms for s in stop]),
        stats("event (interrupted llm_response)", event),
        stats("event - one way (rtt/2)", [e - one_way for e in event]),
        stats("event - one way - segmenter", [e - one_way - decision_ms for e in event]),
        stats("last reply frame after event", [r["last_frame_after_event_ms"] for r in rounds]),
    ]
    print(
        f"transport round trip (echo) median {rtt_ms:.1f} ms (one way {one_way:.1f}); "
        f"BARGE_IN_MIN_MS {args.barge_in_min_ms}; segmenter decision for this phrase "
        f"{decision_ms:.0f} ms after its first voiced frame; goal {goal} ms"
    )
    print_table(rows, ["measure", "p50", "p95"])
    p50_one_way = percentile([s - one_way for s in stop], 50)
    p50_rtt = percentile([s - rtt_ms for s in stop], 50)
    print(
        f"goal {goal} ms: stop - one way p50 {p50_one_way:.0f} ms "
        f"({'met' if p50_one_way is not None and p50_one_way <= goal else 'not met'}); "
        f"stop - round trip p50 {p50_rtt:.0f} ms "
        f"({'met' if p50_rtt is not None and p50_rtt <= goal else 'not met'})"
    )
    bad = [r for r in rounds if r["reason"] != "barge_in" or r["voiced_frames_after_event_plus_1s"]]
    if bad:
        print(f"note: {len(bad)} round(s) not a clean barge-in: {bad}")
    load_after = load_average()
    print(f"load average before {load_before}, after {load_after}")
    return {
        "barge_in_min_ms": args.barge_in_min_ms,
        "goal_ms": goal,
        "transport_round_trip_ms": [r * 1000 for r in rtts],
        "one_way_ms": one_way,
        "segmenter_decision_ms": decision_ms,
        "phrase": PHRASE,
        "phrase_leading_silence_ms": lead * 1000,
        "summary": rows,
        "rounds": rounds,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, help="barge-ins to time (default 8)")
    parser.add_argument("--barge-in-min-ms", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 3 echo round trips")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 8)
    args.rtt_rounds = 3 if args.quick else 5
    run_bench("bargein", run, args, client_cpu=CLIENT_CPU)


if __name__ == "__main__":
    main()
