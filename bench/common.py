"""Shared plumbing for the benchmarks: servers in subprocesses, CPU and RSS
readings, percentiles, result files. Loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from media_server.rtc.ice import configure_host_addresses

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (a --workers server and its workers)."""
    total = rss_mb(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        with contextlib.suppress(OSError):  # a worker that just died
            total += rss_mb(int(child))
    return total


def self_cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_busy_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU (busy, total) jiffies from /proc/stat: whoever ran there."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        m = re.match(r"cpu(\d+)\s+(.*)", line)
        if m:
            v = [int(x) for x in m.group(2).split()]
            idle = v[3] + v[4]  # idle + iowait
            out[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def cpu_busy_pct(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> dict:
    """Busy % of each CPU between two ``cpu_busy_ticks()`` readings."""
    pct = {}
    for cpu, (busy, total) in after.items():
        b0, t0 = before.get(cpu, (0, 0))
        pct[cpu] = 100.0 * (busy - b0) / (total - t0) if total > t0 else None
    return pct


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def pin_cpus(cpus: set[int]) -> set[int] | None:
    """Pin this process (every thread so far, and those started later) to ``cpus``."""
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), cpus)
    except (AttributeError, OSError):  # no such CPU here, or not Linux
        return None
    return cpus


LAG_METRIC = "voice_agent_event_loop_lag_ms"
LATE_METRIC = "voice_agent_outbound_frames_late_total"


@dataclass
class LagSnapshot:
    """One reading of a server's event-loop lag metric: a gauge (latest
    sample) or a histogram (cumulative bucket counts, ``le`` -> count)."""

    gauge: float | None = None
    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0
    # The voice server's count of agent frames sent > 20 ms behind schedule
    # (None from a server without it, like the echo).
    late_frames: float | None = None


async def read_loop_lag(http: aiohttp.ClientSession, base_url: str) -> LagSnapshot | None:
    """The server's ``voice_agent_event_loop_lag_ms`` from /metrics (None if
    absent), and its count of late agent frames when it keeps one."""
    try:
        async with http.get(f"{base_url}/metrics", timeout=aiohttp.ClientTimeout(total=2)) as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    snap = LagSnapshot()
    for line in text.splitlines():
        if line.startswith(f"{LATE_METRIC} "):
            snap.late_frames = float(line.rpartition(" ")[2])
        if not line.startswith(LAG_METRIC):
            continue
        name, _, value = line.rpartition(" ")
        if name == LAG_METRIC:
            snap.gauge = float(value)
        elif name.startswith(f"{LAG_METRIC}_bucket"):
            le = re.search(r'le="([^"]+)"', name)
            if le:
                snap.buckets[float(le.group(1))] = float(value)
        elif name == f"{LAG_METRIC}_count":
            snap.count = float(value)
        elif name == f"{LAG_METRIC}_sum":
            snap.total = float(value)
    return snap if snap.gauge is not None or snap.buckets else None


def lag_stats(
    before: LagSnapshot | None, after: LagSnapshot | None, polled: Sequence[float]
) -> dict[str, Any]:
    """Lag over a window: from the histogram's bucket deltas when the server
    keeps one (p99 = upper bound of the bucket holding the 99th percentile),
    else from gauge values polled during the window."""
    if before is not None and after is not None and after.buckets:
        n = after.count - before.count
        if n <= 0:
            return {"source": "histogram", "samples": 0, "p99_ms": None, "mean_ms": None}
        p99: float | None = None
        for le in sorted(after.buckets):
            if after.buckets[le] - before.buckets.get(le, 0.0) >= 0.99 * n:
                p99 = le
                break
        finite = [le for le in after.buckets if le != float("inf")]
        return {
            "source": "histogram",
            "samples": int(n),
            # In the +Inf bucket: say "more than the largest bound" instead.
            "p99_ms": p99 if p99 != float("inf") else None,
            "p99_above_ms": max(finite) if p99 == float("inf") and finite else None,
            "mean_ms": (after.total - before.total) / n,
        }
    return {
        "source": "gauge",
        "samples": len(polled),
        "p99_ms": percentile(polled, 99),
        "mean_ms": sum(polled) / len(polled) if polled else None,
    }


class LoopLagSampler:
    """Lag of *this* process's event loop: how late a short sleep wakes up.

    For the bench process (clients): a client loop running late makes server
    frames look late, so its lag is reported beside the servers' numbers."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.samples_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.samples_ms = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval_s)
            self.samples_ms.append(max(0.0, (time.monotonic() - start - self.interval_s) * 1000))

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.samples_ms


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class ServerProcess:
    """A server (ours or the echo baseline) in its own process, so its CPU is
    measured apart from the clients'."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        """``cpus``: pin the server there before it starts (all its threads inherit)."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "ELEVENLABS_", "STT_", "LLM_", "TTS_"))
        }
        full_env.update(env or {})
        full_env.setdefault("ICE_HOST_ADDRESSES", "127.0.0.1")
        full_env.setdefault("LOG_LEVEL", "WARNING")
        # Its agents' database in a directory of its own, gone with it (never the checkout's).
        self._data_dir = tempfile.mkdtemp(prefix="voice-agent-bench-data-")
        full_env.setdefault("DATABASE_URL", f"sqlite:///{self._data_dir}/voice-agent.db")
        preexec: Callable[[], None] | None = None
        if cpus:
            pinned = set(cpus)

            def preexec() -> None:
                os.sched_setaffinity(0, pinned)

        self.proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(self.port)],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=None,
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base_url}/health") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise TimeoutError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            # SIGINT ends at once; SIGTERM would let live calls drain.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._data_dir, ignore_errors=True)


@contextlib.contextmanager
def server_process(
    args: Sequence[str], env: dict[str, str] | None = None, cpus: set[int] | None = None
) -> Iterator[ServerProcess]:
    server = ServerProcess(args, env, cpus)
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def fakes_process(*args: str) -> AsyncIterator[dict[str, str]]:
    """``bench.fakes_server`` in its own process, yielding its base URLs
    (``openai``, ``elevenlabs``). Apart so that the fakes' CPU counts neither
    as the server's nor as the clients', and their work cannot delay the
    clients' loop (where it would read as the server's late frames). It
    inherits this process's CPU affinity."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fakes_server", *args, cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("bench.fakes_server exited before printing its URLs")
        yield json.loads(line)
    finally:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)


def fakes_env(urls: dict[str, str]) -> dict[str, str]:
    """The voice server's provider keys and base URLs, pointing its OpenAI and
    ElevenLabs clients at the fakes of ``fakes_process`` (``urls``)."""
    return {
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": urls["openai"],
        "ELEVENLABS_API_KEY": "el-bench",
        "ELEVENLABS_BASE_URL": urls["elevenlabs"],
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def run_bench(
    name: str,
    run: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
    *args: Any,
    client_cpu: int | None = None,
) -> dict[str, Any]:
    """A benchmark's entry point: pin this process to ``client_cpu`` (before
    the loop starts, so its threads and the fakes' process inherit it), offer
    loopback ICE candidates only, ``asyncio.run(run(*args))``, and write the
    result to ``bench/results/<name>.json``."""
    if client_cpu is not None and pin_cpus({client_cpu}) is None:
        print(f"could not pin this process to CPU {client_cpu}; it may share the server's core")
    configure_host_addresses(("127.0.0.1",))
    data = asyncio.run(run(*args))
    print(f"wrote {write_results(name, data)}")
    return data


def print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.1f}"
        return str(v)

    widths = [max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(fmt(r.get(c)).rjust(w) for c, w in zip(columns, widths, strict=True)))


def server_is_speech() -> Callable[[bytes], bool]:
    """The default server's voice detector (Silero), for a bench that
    replays the segmenter offline to know when the server decided."""
    from media_server.listening.vad import DEFAULT_THRESHOLD, SileroPool, screened_silero

    vad = screened_silero(DEFAULT_THRESHOLD, 2)
    vad.attach(SileroPool(keep=0).acquire())
    return vad.is_speech
