"""How many concurrent sessions one core holds: our voice server vs bare aiortc.

N clients (Python aiortc peers in this process) each keep continuous two-way
audio with the server and speak a short utterance every ``--cycle`` seconds,
so against the voice server a turn (STT -> LLM -> TTS -> reply audio, all
through the loopback fakes at small fixed latencies) happens every few
seconds per session. The same clients, same audio, run against the bare
aiortc echo server (``bench.echo_server``) in the same run, interleaved step
by step, so the result is a ratio and machine noise hits both alike.

Both servers are pinned to CPU 0, this process (clients and fakes) to CPU 1:
"per core" then means one core. Per step (N sessions, ``--window`` seconds
measured after all are connected and settled) it reports:

- server CPU ms per session-second (the server process only, all threads);
- late frames: at the client, each received RTP packet's offset = arrival -
  RTP timestamp/48000, taken as the client's DTLS transport hands the packet
  on (before the client's jitter buffer and decoder thread, which are not the
  server's doing); late if it exceeds that session's baseline (1st
  percentile of its offsets) by more than 20 ms. Frames that never arrived
  (timestamp gaps) are counted apart as lost;
- event-loop lag p99: from the server's ``voice_agent_event_loop_lag_ms``
  histogram (how late a 250 ms timer wakes, the same sampler in both
  servers), read from /metrics only at the window's two ends: the p99 is the
  upper bound of its bucket. Polling /metrics during the window would charge
  the server a render each time, and the voice server's, with its stage
  histograms, costs more than the echo's;
- sent late (voice only): frames the server's own track sent more than 20 ms
  behind schedule (``voice_agent_outbound_frames_late_total``). Late frames at
  the clients with none sent late point past the track: the send path, the
  sockets, the clients;
- turns completed (``turn_metrics`` events) and interrupted ones (voice only);
- the client side: this process's CPU, its own loop lag, and how often the
  clients' microphones sent a frame > 20 ms late. If these are high the step
  is client-bound and says so.

A server's sweep stops at the first step with > 0.1 % late frames or ~100 %
CPU. The machine may be shared: before each step the bench waits (bounded)
for both cores to be quiet, reports how busy other processes kept the
server's core during the step (``cpu0_other_pct``), and runs a failed step
again (at most twice) when that exceeded 15 %.

The clients' microphones send pre-encoded Opus packets (encoded once here,
with aiortc's own encoder) instead of PCM, so the client core is not spent on
Opus encoding and aiortc's pure-Python audio level: that keeps the clients
well below the server's load and the result server-bound.

    uv run python -m bench.capacity [--quick] [--ns 4,8,12,...] [--window 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import random
import statistics
import time
from array import array
from collections import deque
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.common import (
    LoopLagSampler,
    ServerProcess,
    cpu_busy_pct,
    cpu_busy_ticks,
    cpu_seconds,
    fakes_env,
    fakes_process,
    lag_stats,
    load_average,
    percentile,
    print_table,
    read_loop_lag,
    rss_mb,
    run_bench,
    self_cpu_seconds,
)
from tests.audio_fixtures import speech_48k
from tests.voice_client import VoiceClient

SERVER_CPU = 0
CLIENT_CPU = 1
SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
LATE_S = 0.020  # a frame later than this behind its session's baseline is late
LATE_LIMIT_PCT = 0.1
CPU_LIMIT_PCT = 95.0  # "~100 %" of the server's core
CLIENT_CPU_LIMIT_PCT = 90.0
# Other processes' share of the server's core above this: a failing step is
# run once more (the machine is shared; a burst of foreign load is not ours).
CONTENDED_PCT = 15.0
RETRIES = 2
LAG_POLL_S = 0.5
UTTERANCE = "Can you help me?"  # ~1.3 s of espeak-ng speech
REPLY = "Sure, I can help with that."  # one sentence: one TTS request, ~1 s of audio
FAKE_DELAY_S = 0.05
TOKEN_DELAY_S = 0.01
CONNECT_PARALLEL = 4
CONNECT_TIMEOUT_S = 20.0
CLOSE_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 15.0


# ---- clients ------------------------------------------------------------------


def opus_packets(pcm48k: bytes, lead_frames: int = 3, tail_frames: int = 5) -> list[bytes]:
    """Mono 48 kHz PCM -> the Opus payloads aiortc's sender would produce for it."""
    encoder = OpusEncoder()
    fb = FRAME_SAMPLES * 2
    pcm = bytes(fb * lead_frames) + pcm48k
    pcm = pcm.ljust(-(-len(pcm) // fb) * fb, b"\x00") + bytes(fb * tail_frames)
    payloads: list[bytes] = []
    for i in range(len(pcm) // fb):
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm[i * fb : (i + 1) * fb])
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = TIME_BASE
        frame.pts = i * FRAME_SAMPLES
        encoded, _ = encoder.encode(frame)
        payloads.extend(encoded)
    return payloads


class PacketMic(MediaStreamTrack):
    """A microphone that sends pre-encoded Opus packets, paced like AgentAudioTrack
    (absolute 20 ms clock, re-anchored when > 100 ms behind), silence between
    utterances. It counts frames that left more than 20 ms after their slot."""

    kind = "audio"
    MAX_LAG_S = 0.1

    def __init__(self, silence: bytes) -> None:
        super().__init__()
        self._silence = silence
        self._queue: deque[bytes] = deque()
        self._anchor: float | None = None
        self._n = 0
        self._pts = 0
        self.counting = False
        self.frames = 0
        self.late_frames = 0

    def say(self, packets: list[bytes]) -> None:
        self._queue.extend(packets)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = now
        else:
            self._n += 1
            due = self._anchor + self._n * FRAME_S
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            if self.counting:
                self.frames += 1
                self.late_frames += now - due > LATE_S
            if now - due > self.MAX_LAG_S:
                self._anchor, self._n = now, 0
        if self.readyState != "live":
            raise MediaStreamError
        packet = av.Packet(self._queue.popleft() if self._queue else self._silence)
        packet.pts = self._pts
        packet.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        return packet


class CapacityClient(VoiceClient):
    """VoiceClient with a packet microphone. While recording, it notes the
    arrival time and RTP timestamp of each audio packet as the client's DTLS
    transport hands it to the receiver: before the client's jitter buffer,
    decoder thread and track queue, whose delays are the client's own."""

    def __init__(self, base_url: str, silence: bytes) -> None:
        super().__init__(base_url)
        self.mic = PacketMic(silence)  # type: ignore[assignment]
        self.recording = False
        self.arrivals = array("d")
        self.timestamps = array("q")

    async def connect(self, *args: Any, **kwargs: Any) -> dict:
        welcome = await super().connect(*args, **kwargs)
        for receiver in self.pc.getReceivers():
            if receiver.track.kind == "audio":
                self._note_packets(receiver)
        return welcome

    def _note_packets(self, receiver: Any) -> None:
        handle = receiver._handle_rtp_packet  # aiortc's, called per RTP packet

        async def noting(packet: Any, arrival_time_ms: int) -> None:
            if self.recording:
                self.arrivals.append(time.monotonic())
                self.timestamps.append(packet.timestamp)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = noting

    async def _consume(self, track: Any) -> None:
        # The decoded audio must be drained; timing comes from the packets.
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()

    def record(self, on: bool) -> None:
        self.recording = on
        self.mic.counting = on  # type: ignore[attr-defined]


def unwrap_rtp(timestamps: np.ndarray) -> np.ndarray:
    """32-bit RTP timestamps (random origin, may wrap) as a continuous int64 clock."""
    steps = np.diff(timestamps.astype(np.int64))
    steps[steps < -(2**31)] += 2**32
    steps[steps > 2**31] -= 2**32
    return np.concatenate(([0], np.cumsum(steps)))


def frame_timing(arrivals: array, timestamps: array) -> dict[str, float]:
    """Late and lost frames of one session's received stream."""
    if len(timestamps) < 10:
        return {"frames": len(timestamps), "late": 0, "lost": 0, "p99_ms": 0.0}
    a = np.frombuffer(arrivals, dtype=np.float64)
    p = unwrap_rtp(np.frombuffer(timestamps, dtype=np.int64))
    offset = a - p / SAMPLE_RATE
    rel = offset - np.percentile(offset, 1)
    expected = int((p.max() - p.min()) // FRAME_SAMPLES) + 1
    return {
        "frames": len(p),
        "late": int(np.count_nonzero(rel > LATE_S)),
        "lost": max(0, expected - len(np.unique(p))),
        "p99_ms": float(np.percentile(rel, 99)) * 1000,
    }


# ---- one step -------------------------------------------------------------------


async def _connect(client: CapacityClient, gate: asyncio.Semaphore, agent: str) -> bool:
    async with gate:
        try:
            await client.connect(agent, timeout=CONNECT_TIMEOUT_S)
            return True
        except Exception as exc:
            print(f"  connect failed: {type(exc).__name__}: {exc}")
            return False


async def _talk(client: CapacityClient, packets: list[bytes], cycle: float, phase: float) -> None:
    """An utterance every ``cycle`` seconds, starting ``phase`` in. Cancelled by the step."""
    await asyncio.sleep(phase)
    for _ in range(10_000):
        client.mic.say(packets)  # type: ignore[attr-defined]
        await asyncio.sleep(cycle)


async def _wait_sessions_gone(http: aiohttp.ClientSession, base_url: str) -> int:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    sessions = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{base_url}/health") as r:
                sessions = (await r.json())["sessions"]
                if sessions == 0:
                    return 0
        await asyncio.sleep(0.25)
    return sessions


async def wait_for_quiet(max_s: float) -> tuple[float, dict[int, float | None]]:
    """Between steps (servers idle): wait, at most ``max_s``, until neither core
    is more than CONTENDED_PCT busy with other processes' work."""
    start = time.monotonic()
    while True:
        before = cpu_busy_ticks()
        await asyncio.sleep(1.0)
        busy = cpu_busy_pct(before, cpu_busy_ticks())
        quiet = all((busy.get(c) or 0.0) <= CONTENDED_PCT for c in (SERVER_CPU, CLIENT_CPU))
        if quiet or time.monotonic() - start >= max_s:
            return time.monotonic() - start, busy


async def run_step(
    kind: str,
    server: ServerProcess,
    n: int,
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    utterance: list[bytes],
    silence: bytes,
) -> dict[str, Any]:
    clients = [CapacityClient(server.base_url, silence) for _ in range(n)]
    talkers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    try:
        t_connect = time.monotonic()
        ok = await asyncio.gather(
            *(_connect(c, gate, "echo" if kind == "echo" else "receptionist") for c in clients)
        )
        connect_s = time.monotonic() - t_connect
        live = [c for c, good in zip(clients, ok, strict=True) if good]
        rng = random.Random(n)
        talkers = [
            asyncio.create_task(_talk(c, utterance, args.cycle, rng.uniform(0, args.cycle)))
            for c in live
        ]
        await asyncio.sleep(args.settle)

        own_lag = LoopLagSampler()
        own_lag.start()
        for c in live:
            c.record(True)
        events0 = [len(c.events) for c in live]
        ticks0 = cpu_busy_ticks()
        srv0, own0, t0 = cpu_seconds(server.pid), self_cpu_seconds(), time.monotonic()
        lag0 = await read_loop_lag(http, server.base_url)
        polled: list[float] = []
        # With the lag histogram, its counts at the window's ends say it all;
        # polling /metrics would charge the server a render every 0.5 s (the
        # voice server's, with its stage histograms, costs more than the echo's).
        polls = 0 if lag0 is not None and lag0.buckets else int(args.window / LAG_POLL_S) + 1
        if not polls:
            await asyncio.sleep(args.window)
        for _ in range(polls):
            remaining = t0 + args.window - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(LAG_POLL_S, remaining))
            snap = await read_loop_lag(http, server.base_url)
            if snap is not None and snap.gauge is not None:
                polled.append(snap.gauge)
        lag1 = await read_loop_lag(http, server.base_url)
        lag = lag_stats(lag0, lag1, polled)
        # Frames the server itself sent late: when clients see late frames and
        # this stays 0, the delay is after the track (send path, sockets).
        sent_late = (
            lag1.late_frames - lag0.late_frames
            if kind == "voice"  # the echo serves the metric but has no schedule to miss
            and lag0
            and lag1
            and lag0.late_frames is not None
            and lag1.late_frames is not None
            else None
        )
        wall = time.monotonic() - t0
        srv_cpu, own_cpu = cpu_seconds(server.pid) - srv0, self_cpu_seconds() - own0
        busy = cpu_busy_pct(ticks0, cpu_busy_ticks())
        for c in live:
            c.record(False)
        own_lags = await own_lag.stop()
        rss = rss_mb(server.pid)
    finally:
        for task in talkers:
            task.cancel()
        await asyncio.gather(*talkers, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    leftover = await _wait_sessions_gone(http, server.base_url)

    timing = [frame_timing(c.arrivals, c.timestamps) for c in live]
    frames = sum(t["frames"] for t in timing)
    late = sum(t["late"] for t in timing)
    lost = sum(t["lost"] for t in timing)
    mic_frames = sum(c.mic.frames for c in live)  # type: ignore[attr-defined]
    mic_late = sum(c.mic.late_frames for c in live)  # type: ignore[attr-defined]
    new_events = [e for c, i in zip(live, events0, strict=True) for e in c.events[i:]]
    server_pct = srv_cpu / wall * 100
    client_pct = own_cpu / wall * 100
    late_pct = 100 * late / frames if frames else 100.0
    mic_late_pct = 100 * mic_late / mic_frames if mic_frames else 0.0
    own_lag_p99 = percentile(own_lags, 99)
    row: dict[str, Any] = {
        "kind": kind,
        "n": n,
        "connected": len(live),
        "cpu_ms_per_sess_s": srv_cpu * 1000 / (wall * len(live)) if live else None,
        "server_cpu_pct": server_pct,
        "late_pct": late_pct,
        "late_by_session": [t["late"] for t in timing],
        "lost_pct": 100 * lost / (frames + lost) if frames + lost else 0.0,
        "jitter_p99_ms": percentile([t["p99_ms"] for t in timing], 50),
        "lag_p99_ms": lag["p99_ms"],
        "sent_late": sent_late,
        "lag_mean_ms": lag["mean_ms"],
        "turns": sum(e["type"] == "turn_metrics" for e in new_events) if kind == "voice" else None,
        "interrupted": (
            sum(bool(e.get("interrupted")) for e in new_events) if kind == "voice" else None
        ),
        "errors": sum(e["type"] == "error" for e in new_events),
        "client_cpu_pct": client_pct,
        "client_lag_p99_ms": own_lag_p99,
        "mic_late_pct": mic_late_pct,
        "cpu0_busy_pct": busy.get(SERVER_CPU),
        "cpu1_busy_pct": busy.get(CLIENT_CPU),
        # Busy time on each core not spent by the server / this process.
        "cpu0_other_pct": max(0.0, (busy.get(SERVER_CPU) or 0.0) - server_pct),
        "cpu1_other_pct": max(0.0, (busy.get(CLIENT_CPU) or 0.0) - client_pct),
        "rss_mb": rss,
        "connect_s": connect_s,
        "window_s": wall,
        "frames": frames,
        "lag": lag,
        "sessions_left_after_close": leftover,
        "loadavg": load_average()[0],
    }
    row["client_bound"] = bool(
        client_pct >= CLIENT_CPU_LIMIT_PCT
        or mic_late_pct > LATE_LIMIT_PCT
        or (own_lag_p99 or 0) > LATE_S * 1000
    )
    row["ok"] = bool(len(live) == n and late_pct <= LATE_LIMIT_PCT and server_pct < CPU_LIMIT_PCT)
    return row


async def warm_up(
    kind: str, server: ServerProcess, utterance: list[bytes], silence: bytes
) -> dict[str, Any]:
    """One session (and for the voice server one turn) before measuring: the
    first turn of a fresh process pays one-time costs (imports, first HTTP
    connections, codec set-up) that would otherwise land in the first step."""
    client = CapacityClient(server.base_url, silence)
    out: dict[str, Any] = {}
    try:
        await client.connect("echo" if kind == "echo" else "receptionist")
        client.record(True)
        await asyncio.sleep(1.0)
        if kind == "voice":
            since = len(client.events)
            client.mic.say(utterance)  # type: ignore[attr-defined]
            await client.wait_for("turn_metrics", since=since, timeout=30)
            await asyncio.sleep(2.0)
        else:
            await asyncio.sleep(2.0)
        client.record(False)
        timing = frame_timing(client.arrivals, client.timestamps)
        rtp = unwrap_rtp(np.frombuffer(client.timestamps, np.int64))
        offsets = np.frombuffer(client.arrivals) - rtp / SAMPLE_RATE
        out = {
            "late_frames": timing["late"],
            "frames": timing["frames"],
            # How far the stream drifted from the wall clock over the turn.
            "offset_shift_ms": float(offsets[-50:].min() - offsets[:50].min()) * 1000,
        }
    finally:
        await client.close()
    return out


# ---- the sweep ------------------------------------------------------------------


COLUMNS = [
    "kind",
    "n",
    "cpu_ms_per_sess_s",
    "server_cpu_pct",
    "late_pct",
    "lost_pct",
    "jitter_p99_ms",
    "lag_p99_ms",
    "sent_late",
    "turns",
    "interrupted",
    "client_cpu_pct",
    "client_lag_p99_ms",
    "mic_late_pct",
    "cpu0_other_pct",
    "ok",
]


def summarize(rows: list[dict[str, Any]], stopped: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("echo", "voice"):
        mine = [r for r in rows if r["kind"] == kind]
        passing = []
        for r in mine:  # the largest N below the first failure
            if not r["ok"]:
                break
            passing.append(r)
        failed = next((r for r in mine if not r["ok"]), None)
        out[kind] = {
            "max_n": passing[-1]["n"] if passing else 0,
            "bounded": failed is not None,  # False: never failed, max_n is a lower bound
            "first_failure": (
                {k: failed[k] for k in ("n", "late_pct", "server_cpu_pct", "client_bound")}
                if failed
                else None
            ),
            "stopped": stopped.get(kind, "sweep ended"),
            # Not a measurement: where CPU alone would run out, from the
            # largest passing step (late frames usually come well before).
            "sessions_at_100pct_cpu_extrapolated": (
                passing[-1]["n"] * 100 / passing[-1]["server_cpu_pct"] if passing else None
            ),
        }
    e, v = out["echo"]["max_n"], out["voice"]["max_n"]
    out["capacity_ratio_voice_over_echo"] = v / e if e else None
    by_n = {(r["kind"], r["n"]): r for r in rows}
    ratios = {}
    for (kind, n), r in by_n.items():
        other = by_n.get(("echo", n))
        if kind == "voice" and other and r["ok"] and other["ok"]:
            ratios[n] = r["cpu_ms_per_sess_s"] / other["cpu_ms_per_sess_s"]
    out["cpu_per_session_ratio_by_n"] = ratios
    out["cpu_per_session_ratio_median"] = statistics.median(ratios.values()) if ratios else None
    out["goals"] = {
        "capacity_ratio_min": 0.8,
        "cpu_per_session_ratio_max": 1.15,
        "late_limit_pct": LATE_LIMIT_PCT,
    }
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    load_before = load_average()
    speech = speech_48k(UTTERANCE)
    utterance = opus_packets(speech)
    silence = opus_packets(bytes(FRAME_SAMPLES * 2 * 20), 0, 0)[-1]
    # The fakes get their own process (on the clients' core): run in this
    # one, their work during a turn delayed the clients' loop, and the
    # clients read that as the voice server's late frames.
    fakes = contextlib.AsyncExitStack()
    urls = await fakes.enter_async_context(
        fakes_process(
            "--transcript=Can you help me?",
            f"--first-byte-delay={FAKE_DELAY_S}",
            f"--token-delay={TOKEN_DELAY_S}",
            f"--tts-delay={FAKE_DELAY_S}",
            "--tts-seconds=1.0",
            "--replies",
            json.dumps({"": REPLY}),  # "" is in every prompt: one reply for all
        )
    )
    voice_env = {
        **fakes_env(urls),
        "MAX_SESSIONS": "1000",
        "RATE_LIMIT_PER_MINUTE": "0",
        **({"VAD_PROVIDER": args.vad} if args.vad else {}),
        **({"ECHO_GUARD": args.echo_guard} if args.echo_guard else {}),
    }
    servers = {
        "echo": ServerProcess(
            ["-m", "bench.echo_server", "--frames", args.echo_frames], cpus={SERVER_CPU}
        ),
        "voice": ServerProcess(args.voice_args.split(), voice_env, cpus={SERVER_CPU}),
    }
    rows: list[dict[str, Any]] = []
    stopped: dict[str, str] = {}
    warm: dict[str, Any] = {}
    try:
        for server in servers.values():
            await server.wait_ready()
        warm = {k: await warm_up(k, srv, utterance, silence) for k, srv in servers.items()}
        print(f"warm-up (first session/turn of each process): {warm}")
        async with aiohttp.ClientSession() as http:
            for n in args.ns:
                for kind, server in servers.items():
                    if kind in stopped:
                        continue
                    spent = time.monotonic() - started
                    step_s = args.settle + args.window + 5 + n * 0.15
                    if spent + step_s > args.budget:
                        stopped[kind] = f"time budget ({args.budget:.0f} s) before N={n}"
                        continue
                    attempts: list[dict[str, Any]] = []
                    for _ in range(1 + RETRIES):
                        waited, idle_busy = await wait_for_quiet(args.quiet_wait)
                        print(
                            f"{kind}: N={n} (waited {waited:.0f} s for quiet cores: "
                            f"busy {idle_busy}) ...",
                            flush=True,
                        )
                        row = await run_step(kind, server, n, args, http, utterance, silence)
                        row["quiet_wait_s"] = waited
                        attempts.append(row)
                        if row["ok"] or row["cpu0_other_pct"] <= CONTENDED_PCT:
                            break
                        print_table([row], COLUMNS)
                        print(
                            f"  other processes took {row['cpu0_other_pct']:.0f} % of the "
                            "server's core: running this step again"
                        )
                    row = attempts[-1]
                    if len(attempts) > 1:
                        row["earlier_attempts"] = attempts[:-1]
                    rows.append(row)
                    print_table([row], COLUMNS)
                    if not row["ok"]:
                        why = "client-bound " if row["client_bound"] else ""
                        stopped[kind] = f"{why}failure at N={n}"
                if len(stopped) == len(servers):
                    break
    finally:
        for server in servers.values():
            server.stop()
        await fakes.aclose()
    summary = summarize(rows, stopped)
    print()
    print_table(sorted(rows, key=lambda r: (r["n"], r["kind"])), COLUMNS)
    print()
    for kind in ("echo", "voice"):
        s = summary[kind]
        bound = "" if s["bounded"] else " (never failed: a lower bound)"
        print(f"{kind}: largest N with <= {LATE_LIMIT_PCT} % late frames: {s['max_n']}{bound}")
        if s["sessions_at_100pct_cpu_extrapolated"]:
            print(
                f"  (CPU alone would run out at ~{s['sessions_at_100pct_cpu_extrapolated']:.0f}"
                " sessions: an extrapolation, not a measurement)"
            )
    ratio = summary["capacity_ratio_voice_over_echo"]
    cpu_ratio = summary["cpu_per_session_ratio_median"]
    caveat = ""
    if ratio is not None and not summary["echo"]["bounded"]:
        caveat = " (echo never failed: an upper bound)"
    elif ratio is not None and not summary["voice"]["bounded"]:
        caveat = " (voice never failed: a lower bound)"
    print(
        f"capacity voice/echo: {ratio:.2f}x{caveat} (goal >= 0.8x)"
        if ratio is not None
        else "capacity ratio: -"
    )
    print(
        f"CPU per session voice/echo (median over common passing N): {cpu_ratio:.2f}x"
        " (goal <= 1.15x)"
        if cpu_ratio is not None
        else "CPU ratio: -"
    )
    if any(r["client_bound"] for r in rows):
        print("note: some steps were client-bound (client CPU/lag/mic lateness high)")
    load_after = load_average()
    print(f"load average before {load_before}, after {load_after}")
    return {
        "config": {
            "ns": args.ns,
            "window_s": args.window,
            "settle_s": args.settle,
            "cycle_s": args.cycle,
            "utterance": UTTERANCE,
            "reply": REPLY,
            "fake_delay_s": FAKE_DELAY_S,
            "late_threshold_ms": LATE_S * 1000,
            "server_cpu": SERVER_CPU,
            "client_cpu": CLIENT_CPU,
            "echo_frames": args.echo_frames,
            "voice_args": args.voice_args,
        },
        "warm_up": warm,
        "rows": rows,
        "summary": summary,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "runtime_s": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 2, 4, 8; 6 s windows")
    parser.add_argument(
        "--vad", choices=("silero", "webrtcvad"), help="the voice server's VAD_PROVIDER"
    )
    parser.add_argument(
        "--echo-guard", choices=("aec", "off"), help="the voice server's ECHO_GUARD"
    )
    parser.add_argument("--ns", help="comma list of session counts (default 4,6,...,24)")
    parser.add_argument("--window", type=float, help="measured seconds per step (default 15)")
    parser.add_argument("--settle", type=float, help="seconds after connect before measuring")
    parser.add_argument("--cycle", type=float, default=4.0, help="seconds between utterances")
    parser.add_argument("--budget", type=float, help="total seconds (default 570)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before each step, wait up to this long for other processes to quiet down"
        " (default 20, --quick 5)",
    )
    parser.add_argument(
        "--voice-args",
        default="-m media_server",
        help="python arguments that start the voice server (to A/B a patched one)",
    )
    parser.add_argument(
        "--echo-frames",
        choices=("mono", "raw"),
        default="mono",
        help="echo server: relay exact-size mono frames (default) or the decoded ones",
    )
    args = parser.parse_args()
    default_ns = "2,4,8" if args.quick else "4,6,8,10,12,14,16,20,24"
    args.ns = [int(x) for x in (args.ns or default_ns).split(",")]
    args.window = args.window or (6.0 if args.quick else 15.0)
    args.settle = args.settle or (2.0 if args.quick else 3.0)
    args.budget = args.budget or (150.0 if args.quick else 570.0)
    if args.quiet_wait is None:
        args.quiet_wait = 5.0 if args.quick else 20.0
    name = "_".join(["capacity", *(x for x in (args.vad, args.echo_guard) if x)])
    run_bench(name, run, args, client_cpu=CLIENT_CPU)


if __name__ == "__main__":
    main()
