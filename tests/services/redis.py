"""Debian's redis-server on loopback, no persistence: each start is empty.
It can be stopped and started again on the same port (Redis going away
mid-call and coming back)."""

from __future__ import annotations

from pathlib import Path

from tests.services.process import Service, free_port, require_binary


class RedisServer:
    def __init__(self, root: Path) -> None:
        self.binary = require_binary("redis-server", "apt-get install redis-server")
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._service: Service | None = None
        self._starts = 0

    def start(self) -> RedisServer:
        self._starts += 1
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
        ]
        self._service = Service(argv, self.root / f"redis-{self._starts}.log")
        self._service.wait_for_tcp(self.port)
        return self

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()
            self._service = None
