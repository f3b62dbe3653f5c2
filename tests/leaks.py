"""What a test may leave behind: tasks, threads, fds and UDP sockets.

A snapshot before and after; ``wait_back_to`` polls with a deadline because
aiortc and aiohttp release some resources a few loop turns after close().
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def udp_socket_count() -> int:
    """UDP sockets this process holds (what an ICE agent leaks)."""
    udp: set[str] = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9:
                        udp.add(parts[9])
        except OSError:
            continue
    return len(udp & _socket_inodes())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass(frozen=True)
class Snapshot:
    tasks: int
    threads: int
    fds: int
    udp: int

    @classmethod
    def take(cls) -> Snapshot:
        try:
            tasks = len([t for t in asyncio.all_tasks() if not t.done()])
        except RuntimeError:
            tasks = 0
        # The loop's default executor ("asyncio_N" threads, used by aiortc for
        # Opus encoding) belongs to the test's loop and is shut down with it.
        threads = sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))
        return cls(tasks, threads, fd_count(), udp_socket_count())

    def excess_over(self, base: Snapshot, *, thread_slack: int = 0) -> dict[str, int]:
        out = {}
        for name in ("tasks", "fds", "udp"):
            extra = getattr(self, name) - getattr(base, name)
            if extra > 0:
                out[name] = extra
        if self.threads - base.threads > thread_slack:
            out["threads"] = self.threads - base.threads
        return out


async def wait_back_to(base: Snapshot, timeout: float = 10.0, **kw: int) -> dict[str, int]:
    """Excess resources still held after ``timeout`` (empty dict = clean)."""
    deadline = time.monotonic() + timeout
    while True:
        excess = Snapshot.take().excess_over(base, **kw)
        if not excess or time.monotonic() > deadline:
            return excess
        await asyncio.sleep(0.1)
