"""coturn on loopback with TURN REST credentials (``use-auth-secret``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services.process import Service, free_port, require_binary


@dataclass(frozen=True)
class Coturn:
    url: str  # turn:127.0.0.1:PORT?transport=udp
    secret: str
    service: Service


@contextmanager
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    binary = require_binary("turnserver", "apt-get install coturn")
    port = free_port()
    secret = secrets.token_hex(16)
    argv = [
        binary,
        "-n",  # no configuration file: everything is on this line
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        "--min-port=40000",
        "--max-port=40999",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        "--realm=voice-agent.test",
        # Both peers of the test are on loopback; coturn refuses those by default.
        "--allow-loopback-peers",
        "--fingerprint",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--no-multicast-peers",
        f"--pidfile={tmp_path / 'turnserver.pid'}",
        "--log-file=stdout",
        "--simple-log",
        "--verbose",
    ]
    service = Service(argv, tmp_path / "coturn.log")
    try:
        service.wait_for_tcp(port)
        yield Coturn(f"turn:127.0.0.1:{port}?transport=udp", secret, service)
    finally:
        service.stop()
