"""Soak: sessions talking for minutes through flaky providers, with churn.

    uv run python -m bench.soak --duration 120

The server runs in its own process (so its RSS and event loop are its own),
with the cloud providers (the real ``openai`` SDK) pointed at a loopback
OpenAI fake that fails ``--error-rate`` of all requests at random (503, 500,
429 and 400 alike: some retried, some not). In this process:

- ``--sessions`` talkers speak (espeak-ng speech into the mic track), wait
  for the turn to finish, pause, and every few turns hang up (half of the
  time with ``end_session``, half by just closing) and call again;
- one churner opens a session, types one turn and drops it, over and over.

With ``--outages`` (the default) the provider also goes down for a few
seconds every ``--outage-every`` seconds, in turn with a revoked key (401),
a 503 storm and a hang (past the server's deadline), while the server runs
fallback chains (OpenAI, then pocketsphinx / scripted / espeak-ng): the goal
is that no call is lost to a provider fault that had a fallback. With
``--workers 2`` one worker is killed (SIGKILL) half-way; its calls are lost
(counted apart) and none of its slots may leak.

It reports the server's RSS slope (least squares, after a warm-up), its
event-loop lag (p50/p99/max), completed and failed turns, the errors the
clients were told about (and whether any turn got more than one), how
sessions ended, and that the server is back to zero sessions and exits on
SIGTERM. Prints a table and writes ``bench/results/soak.json``. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    ServerProcess,
    lag_stats,
    percentile,
    read_loop_lag,
    tree_rss_mb,
    write_results,
)
from media_server.rtc.ice import configure_host_addresses
from tests.audio_fixtures import speech_48k
from tests.fakes.openai_fake import OpenAIFake, OpenAIKnobs
from tests.voice_client import VoiceClient

KEY = "sk-soak-0123456789abcdef"
PHRASES = (
    "I would like to book a table for two.",
    "What time do you open tomorrow?",
    "Can I change my appointment please?",
    "How much does the premium plan cost?",
)
REPLY = "Sure, I can help with that. What day works best for you?"
FAULT_STATUSES = (503, 500, 429, 400)  # retried, retried, retried, not retried
WARM_UP_S = 15.0


class FlakyOpenAIFake(OpenAIFake):
    """The OpenAI fake, failing a random share of requests."""

    def __init__(self, knobs: OpenAIKnobs, error_rate: float, seed: int) -> None:
        super().__init__(knobs)
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self.injected: Counter[int] = Counter()

    def _take_failure(self) -> int | None:
        outage = super()._take_failure()  # an outage (fail_next) first
        if outage is not None:
            self.injected[outage] += 1
            return outage
        if self.rng.random() < self.error_rate:
            status = self.rng.choice(FAULT_STATUSES)
            self.injected[status] += 1
            return status
        return None


OUTAGES = ("401", "503", "hang")


async def outages(
    fake: FlakyOpenAIFake,
    stop: asyncio.Event,
    every_s: float,
    last_s: float,
    log: list[tuple[float, str]],
) -> None:
    """Take the provider down in turn: a revoked key, a 503 storm, a hang."""
    start = time.monotonic()
    for n in range(10_000):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if stop.is_set():
            return
        kind = OUTAGES[n % len(OUTAGES)]
        log.append((round(time.monotonic() - start, 1), kind))
        if kind == "hang":
            fake.knobs.hang = True
        else:
            fake.fail_next(int(kind), -1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), last_s)
        fake.knobs.hang = False
        fake.fail_next(0, 0)  # no outage: random faults only


async def kill_a_worker(
    server: ServerProcess, at_s: float, stop: asyncio.Event, killed: list[int]
) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), at_s)
    if stop.is_set():
        return
    children_file = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    children = (await asyncio.to_thread(children_file.read_text)).split()
    if children:
        os.kill(int(children[0]), signal.SIGKILL)
        killed.append(int(children[0]))


@dataclass
class Tally:
    turns_completed: int = 0
    turns_failed: int = 0
    turns_stuck: int = 0  # no idle within the deadline: a bug if ever > 0
    turns_with_several_errors: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    session_ends: Counter[str] = field(default_factory=Counter)
    sessions_opened: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)
    calls_completed: int = 0  # hung up by the person, not by the server
    calls_stuck: int = 0  # a turn got no answer and no session_end: the call died
    fallback_notices: int = 0
    turn_ms: list[float] = field(default_factory=list)


async def run_turn(client: VoiceClient, tally: Tally, *, pcm: bytes | None, text: str) -> bool:
    """One turn; False if the session ended meanwhile."""
    since = len(client.events)
    start = time.monotonic()
    if pcm is not None:
        await client.say(pcm)
    else:
        client.send({"type": "text_input", "text": text})
    try:
        await client.wait_for("status_update", since=since, status="processing", timeout=15)
        first = next(
            i
            for i in range(since, len(client.events))
            if client.events[i].get("status") == "processing"
        )
        await client.wait_for("status_update", since=first + 1, status="idle", timeout=45)
    except TimeoutError:
        if any(e["type"] == "session_end" for e in client.events[since:]):
            return False
        # No answer and no session_end: the call is dead (its worker was
        # killed). Hang up rather than talk on into nothing.
        tally.turns_stuck += 1
        tally.calls_stuck += 1
        return False
    await asyncio.sleep(0.05)
    events = client.events[since:]
    errors = [e for e in events if e["type"] == "error"]
    for e in errors:
        tally.errors[e["code"]] += 1
    turn_errors = [e for e in errors if e["code"] != "provider_unavailable"]
    if len(turn_errors) > 1:
        tally.turns_with_several_errors += 1
    if turn_errors:
        tally.turns_failed += 1
    elif any(e["type"] == "turn_metrics" for e in events):
        tally.turns_completed += 1
        tally.turn_ms.append((time.monotonic() - start) * 1000)
    return not any(e["type"] == "session_end" for e in events)


async def connect(base_url: str, tally: Tally, agent: str) -> VoiceClient | None:
    client = VoiceClient(base_url)
    try:
        await client.connect(agent, timeout=20)
    except Exception as exc:  # a refused or failed call is data here, not a crash
        tally.connect_failures[type(exc).__name__] += 1
        await client.close()
        return None
    tally.sessions_opened += 1
    return client


async def hang_up(client: VoiceClient, tally: Tally, rng: random.Random) -> None:
    ended = [e for e in client.events if e["type"] == "session_end"]
    tally.fallback_notices += sum(e["type"] == "provider_fallback" for e in client.events)
    if ended:
        tally.session_ends[ended[-1]["reason"]] += 1
    elif rng.random() < 0.5:
        since = len(client.events)
        client.send({"type": "end_session"})
        with contextlib.suppress(TimeoutError):
            end = await client.wait_for("session_end", since=since, timeout=5)
            tally.session_ends[end["reason"]] += 1
            tally.calls_completed += end["reason"] == "client_ended"
    else:
        tally.session_ends["client_dropped"] += 1
        tally.calls_completed += 1
    await client.close()


async def talker(n: int, base_url: str, stop: asyncio.Event, tally: Tally, pcms: list[bytes]):
    rng = random.Random(1000 + n)
    agents = ("receptionist", "sales", "callcenter")
    while not stop.is_set():
        client = await connect(base_url, tally, agents[n % 3])
        if client is None:
            await asyncio.sleep(1.0)
            continue
        try:
            for _ in range(rng.randint(4, 10)):
                if stop.is_set():
                    break
                alive = await run_turn(client, tally, pcm=rng.choice(pcms), text="")
                if not alive:
                    break
                await asyncio.sleep(rng.uniform(0.3, 1.2))
        finally:
            await hang_up(client, tally, rng)


async def churner(base_url: str, stop: asyncio.Event, tally: Tally) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        client = await connect(base_url, tally, "sales")
        if client is None:
            await asyncio.sleep(1.0)
            continue
        try:
            if rng.random() < 0.7:
                await run_turn(client, tally, pcm=None, text="How much does it cost?")
        finally:
            await hang_up(client, tally, rng)
        await asyncio.sleep(rng.uniform(0.1, 0.5))


async def sample(server: ServerProcess, stop: asyncio.Event, rss: list, lag: list) -> None:
    start = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            now = time.monotonic() - start
            rss.append((now, tree_rss_mb(server.pid)))
            snap = await read_loop_lag(http, server.base_url)
            if snap is not None and snap.gauge is not None:
                lag.append((now, snap.gauge))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def hist_quantile(before: Any, after: Any, q: float) -> float | None:
    """Upper bound of the histogram bucket holding quantile ``q`` (0-1) of
    the samples taken between two readings."""
    if before is None or after is None or not after.buckets:
        return None
    n = after.count - before.count
    if n <= 0:
        return None
    for le in sorted(after.buckets):
        if after.buckets[le] - before.buckets.get(le, 0.0) >= q * n:
            return le
    return None


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    xs = [t / 60 for t, _ in points]
    ys = [v for _, v in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_host_addresses(("127.0.0.1",))
    pcms = [await asyncio.to_thread(speech_48k, p) for p in PHRASES]
    knobs = OpenAIKnobs(transcript="I would like to book a table.", reply=REPLY)
    knobs.speech_seconds = 0.6
    fake = await FlakyOpenAIFake(knobs, args.error_rate, args.seed).start()
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": fake.base_url,
        # The chains auto would build: the cloud first, the embedded engine after.
        "STT_PROVIDER": "openai,pocketsphinx" if args.outages else "openai",
        "LLM_PROVIDER": "openai,scripted" if args.outages else "openai",
        "TTS_PROVIDER": "openai,espeak" if args.outages else "openai",
        "PROVIDER_COOLDOWN_S": "5",
        "STT_TIMEOUT_S": "3",
        "LLM_TIMEOUT_S": "3",
        "TTS_TIMEOUT_S": "3",
        "MAX_SESSIONS": str(args.sessions + 4),
        "RATE_LIMIT_PER_MINUTE": "0",
        "PROVIDER_ERROR_LIMIT": str(args.error_limit),
        "LOG_LEVEL": "ERROR",  # failed turns are expected here; keep the table readable
    }
    server = ServerProcess(["-m", "media_server", "--workers", str(args.workers)], env)
    outage_log: list[tuple[float, str]] = []
    killed: list[int] = []
    tally = Tally()
    rss: list[tuple[float, float]] = []
    lag_polled: list[tuple[float, float]] = []
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as http:
            lag_before = await read_loop_lag(http, server.base_url)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(server, stop, rss, lag_polled))
        workers = [
            asyncio.create_task(talker(n, server.base_url, stop, tally, pcms))
            for n in range(args.sessions)
        ]
        if args.churn:
            workers.append(asyncio.create_task(churner(server.base_url, stop, tally)))
        extras = []
        if args.outages:
            extras.append(
                asyncio.create_task(
                    outages(fake, stop, args.outage_every, args.outage_s, outage_log)
                )
            )
        if args.workers > 1:
            extras.append(
                asyncio.create_task(kill_a_worker(server, args.duration / 2, stop, killed))
            )
        started = time.monotonic()
        await asyncio.sleep(args.duration)
        stop.set()
        await asyncio.gather(*workers, *extras, return_exceptions=True)
        ran_s = time.monotonic() - started
        await sampler
        async with aiohttp.ClientSession() as http:
            lag_after = await read_loop_lag(http, server.base_url)
            left = None
            for _ in range(50):  # every session freed?
                async with http.get(f"{server.base_url}/health") as r:
                    left = (await r.json())["sessions"]
                if left == 0:
                    break
                await asyncio.sleep(0.2)
        t0 = time.monotonic()
        server.proc.terminate()
        rc = await asyncio.to_thread(server.proc.wait, 15)
        exit_s = time.monotonic() - t0
    finally:
        server.stop()
        await fake.close()

    steady = [(t, v) for t, v in rss if t >= WARM_UP_S]
    polled = [v for t, v in lag_polled if t >= WARM_UP_S]
    lag = lag_stats(lag_before, lag_after, polled)
    return {
        "duration_s": round(ran_s, 1),
        "sessions": args.sessions,
        "churn": args.churn,
        "error_rate": args.error_rate,
        "provider_error_limit": args.error_limit,
        "rss_start_mb": round(steady[0][1], 1) if steady else None,
        "rss_end_mb": round(rss[-1][1], 1) if rss else None,
        "rss_slope_mb_per_min": _round(slope_mb_per_min(steady), 2),
        # The slope of the second half alone: warm-up growth vs a steady leak.
        "rss_slope_2nd_half_mb_per_min": _round(
            slope_mb_per_min([(t, v) for t, v in steady if t >= (WARM_UP_S + ran_s) / 2]), 2
        ),
        "rss_by_minute_mb": [
            round(next(v for t, v in rss if t >= 60 * m), 1)
            for m in range(int(rss[-1][0] // 60) + 1 if rss else 0)
        ],
        # From the server's lag histogram (a 250 ms timer's lateness, bucketed):
        # p50/p99 are bucket upper bounds. Older servers have a gauge, polled.
        "loop_lag_source": lag["source"],
        "loop_lag_samples": lag["samples"],
        "loop_lag_mean_ms": _round(lag["mean_ms"], 2),
        "loop_lag_p50_ms": _round(
            hist_quantile(lag_before, lag_after, 0.5) or percentile(polled, 50)
        ),
        "loop_lag_p99_ms": _round(lag["p99_ms"]),
        "loop_lag_p99_above_ms": lag.get("p99_above_ms"),
        "turns_completed": tally.turns_completed,
        "turns_failed": tally.turns_failed,
        "turns_stuck": tally.turns_stuck,
        "turns_with_several_errors": tally.turns_with_several_errors,
        "turn_p50_ms": _round(percentile(tally.turn_ms, 50)),
        "errors_delivered": sum(tally.errors.values()),
        "errors_by_code": dict(tally.errors.most_common()),
        "provider_requests": len(fake.requests),
        "provider_errors_injected": sum(fake.injected.values()),
        "injected_by_status": {str(k): v for k, v in sorted(fake.injected.items())},
        "sessions_opened": tally.sessions_opened,
        "connect_failures": dict(tally.connect_failures),
        "session_ends": dict(tally.session_ends.most_common()),
        "sessions_left_after": left,
        "calls_completed": tally.calls_completed,
        "calls_lost_to_providers": tally.session_ends.get("provider_unavailable", 0),
        "calls_lost_to_killed_worker": tally.calls_stuck if killed else None,
        "calls_died_unexplained": 0 if killed else tally.calls_stuck,
        "outages": [f"{t:g}s {kind}" for t, kind in outage_log],
        "fallback_notices": tally.fallback_notices,
        "workers_killed": len(killed),
        "sigterm_exit_code": rc,
        "sigterm_exit_s": round(exit_s, 2),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--sessions", type=int, default=4, help="talking sessions (default 4)")
    parser.add_argument("--error-rate", type=float, default=0.10, help="share of failed requests")
    parser.add_argument("--error-limit", type=int, default=3, help="PROVIDER_ERROR_LIMIT")
    parser.add_argument("--no-churn", dest="churn", action="store_false")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-outages",
        dest="outages",
        action="store_false",
        help="no 401 / 503 / hang outages and no fallback chains",
    )
    parser.add_argument("--outage-every", type=float, default=20.0, help="seconds between outages")
    parser.add_argument("--outage-s", type=float, default=6.0, help="how long an outage lasts")
    parser.add_argument(
        "--workers", type=int, default=1, help="server workers; with 2+, one is killed half-way"
    )
    result = asyncio.run(main(parser.parse_args()))
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = "-" if value is None else value
        print(f"{key.rjust(width)}  {shown}")
    print(f"wrote {write_results('soak', result)}")


if __name__ == "__main__":
    cli()
