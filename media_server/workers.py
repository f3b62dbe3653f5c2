"""``--workers N``: N server processes on one port.

Each worker binds the port with SO_REUSEPORT and the kernel spreads new
connections over them. A worker owns the sessions it answered (their peer
connections and UDP sockets live in its process), so nothing about a session
crosses processes. Two things must be shared to stay correct: the session
count (``/health`` and ``MAX_SESSIONS`` are about the whole server) and the
metrics (``PROMETHEUS_MULTIPROC_DIR``, set before any worker imports
prometheus_client). The parent only supervises: it restarts a worker that
died, and on SIGTERM/SIGINT stops them all.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.sharedctypes
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
# A worker that keeps dying is a bug, not bad luck: stop restarting it.
MAX_RESTARTS_PER_MINUTE = 5


class SessionCount:
    """The number of live sessions, shared by every worker of a server.

    Across processes each worker counts in its own slot of a shared array
    and the total is their sum: a worker that dies (even by SIGKILL, with no
    chance to give its slots back) has its slot zeroed by the parent, so its
    calls stop being counted at once instead of filling ``MAX_SESSIONS``
    with ghosts.
    """

    def __init__(
        self, shared: multiprocessing.sharedctypes.SynchronizedArray | None = None, slot: int = 0
    ) -> None:
        self._shared = shared
        self._slot = slot
        self._local = 0

    @classmethod
    def across_processes(cls, workers: int) -> SessionCount:
        return cls(multiprocessing.get_context("fork").Array("i", workers))

    def for_worker(self, index: int) -> SessionCount:
        """The same shared count, counting this worker's sessions in its slot."""
        return SessionCount(self._shared, index)

    @property
    def value(self) -> int:
        if self._shared is None:
            return self._local
        with self._shared.get_lock():
            return sum(self._shared)

    def try_acquire(self, limit: int) -> bool:
        """Take a slot unless ``limit`` are taken; atomic across workers."""
        if self._shared is None:
            if self._local >= limit:
                return False
            self._local += 1
            return True
        with self._shared.get_lock():
            if sum(self._shared) >= limit:
                return False
            self._shared[self._slot] += 1
            return True

    def release(self) -> None:
        if self._shared is None:
            self._local = max(0, self._local - 1)
            return
        with self._shared.get_lock():
            self._shared[self._slot] = max(0, self._shared[self._slot] - 1)

    def forget_worker(self, index: int) -> None:
        """A worker died: none of its sessions is live any more."""
        if self._shared is not None:
            with self._shared.get_lock():
                self._shared[index] = 0


def run_workers(
    count: int,
    serve: Callable[[int], None],
    *,
    drain_timeout_s: float = 0.0,
    sessions: SessionCount | None = None,
) -> int:
    """Runs ``serve(worker_index)`` in ``count`` forked processes until a
    signal; returns the exit code for the parent. On SIGTERM each worker
    drains (up to ``drain_timeout_s``); a second signal is passed on, and
    ends their calls at once."""
    metrics_dir = tempfile.mkdtemp(prefix="voice-agent-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    context = multiprocessing.get_context("fork")
    stopping = False
    received: list[int] = []  # signals, in order: each is passed on to the workers

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker_main, args=(serve, index, previous), daemon=False)
        process.start()
        return process

    workers = {i: start(i) for i in range(count)}
    restarts: list[float] = []
    code = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in list(workers.items()):
                if process.is_alive() or stopping:
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > MAX_RESTARTS_PER_MINUTE:
                    log.error("workers keep dying (last exit %s); stopping", process.exitcode)
                    stopping, code = True, 1
                    break
                log.warning("worker %d exited with %s; restarting", index, process.exitcode)
                # Its calls died with it: stop counting them, in /health,
                # MAX_SESSIONS and the livesum gauges of /metrics.
                if sessions is not None:
                    sessions.forget_worker(index)
                if process.pid is not None:
                    # Imported only now: prometheus_client picks its value class
                    # at import, and must see PROMETHEUS_MULTIPROC_DIR first.
                    from prometheus_client import multiprocess

                    multiprocess.mark_process_dead(process.pid, metrics_dir)
                workers[index] = start(index)
    finally:
        # SIGTERM: the workers drain; SIGINT, or a second signal: they stop now.
        _signal_all(workers.values(), received[-1] if received else signal.SIGINT)
        passed_on = len(received)
        deadline = time.monotonic() + drain_timeout_s + STOP_TIMEOUT_S
        while any(p.is_alive() for p in workers.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
            if len(received) > passed_on:
                passed_on = len(received)
                _signal_all(workers.values(), received[-1])
        for process in workers.values():
            if process.is_alive():
                process.kill()
            process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return code


def _signal_all(processes: Iterable[multiprocessing.process.BaseProcess], signum: int) -> None:
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)


def _worker_main(serve: Callable[[int], None], index: int, handlers: dict) -> None:
    # The parent's flag-setting handlers must not run in a worker: its own
    # event loop installs the handlers that end its sessions gracefully.
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    serve(index)
