"""Deadlines and liveness: peers that vanish at every stage are noticed within
their deadline, get ``session_end`` when they can still hear it, and leave no
socket, task or fd behind. Also the data-channel caps and SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from signaling.app import METRICS_KEY, REGISTRY_KEY
from tests.integration.hardening import RawIcePeer, offer_body, post
from tests.leaks import udp_socket_count
from tests.voice_client import VoiceClient


async def wait_until(predicate, timeout: float, step: float = 0.05) -> float:
    """Seconds it took for ``predicate()`` to hold; TimeoutError after ``timeout``."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling plain state on purpose
            await asyncio.sleep(step)
    return time.monotonic() - start


def ended(server, reason: str) -> float:
    metrics = server.app[METRICS_KEY]
    return metrics.sessions_ended.labels(reason=reason)._value.get()


def sever(pc: Any) -> None:
    """Close a client's ICE sockets without a word: a killed tab or process
    sends no SCTP ABORT, no DTLS close_notify, nothing."""
    transports = {t.receiver.transport.transport for t in pc.getTransceivers()}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport.transport)
    for ice in transports:
        for protocol in list(ice._connection._protocols):
            if protocol.transport is not None:
                protocol.transport.close()


# ---- connect deadline ----------------------------------------------------------


@pytest.mark.parametrize("answer_checks", [0, 1], ids=["never-does-ice", "one-check-then-gone"])
async def test_connect_deadline_frees_a_peer_that_never_connects(
    leak_check, server_factory, answer_checks
):
    server = await server_factory(connect_timeout_s=2)
    udp_before = udp_socket_count()
    peer = await RawIcePeer(answer_checks=answer_checks).start()
    try:
        status, body, _ = await post(server.base_url, offer_body(peer.offer_sdp()))
        assert status == 200, body
        session = server.app[REGISTRY_KEY].get(body["session_id"])
        assert session is not None
        if answer_checks:
            # The server really did start ICE and got its one answer.
            await asyncio.wait_for(peer.answered.wait(), 5)
            assert session.transport.peer.pc.iceConnectionState == "checking"
        took = await wait_until(lambda: server.session_count == 0, timeout=6)
        assert session.end_reason == "connect_timeout"
        assert ended(server, "connect_timeout") == 1
        assert took < 2 + 2.5, took  # the deadline, plus the watchdog tick and close
        # The server's ICE socket went with it (ours is closed below).
        await wait_until(lambda: udp_socket_count() <= udp_before + 1, timeout=3)
    finally:
        peer.close()


# ---- peers that vanish after connecting ---------------------------------------------


async def test_client_closing_without_end_session_is_noticed_at_once(server, leak_check):
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        session = server.app[REGISTRY_KEY].get(client.session_id)
        await client.pc.close()  # no end_session: SCTP ABORT / DTLS close only
        took = await wait_until(lambda: server.session_count == 0, timeout=5)
        assert session.end_reason in ("peer_closed", "peer_failed"), session.end_reason
        assert took < 3, took
    finally:
        await client.close()


async def test_client_that_stops_pinging_gets_session_end(leak_check, server_factory):
    server = await server_factory(ping_timeout_s=1.5)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        for _ in range(3):  # a page pinging normally
            since = len(client.events)
            quiet_from = time.monotonic()
            client.send({"type": "ping"})
            await client.wait_for("pong", since=since, timeout=5)
            await asyncio.sleep(0.5)
        assert server.session_count == 1
        end = await client.wait_for("session_end", timeout=6)
        assert end["reason"] == "peer_gone"
        assert 1.5 <= time.monotonic() - quiet_from < 1.5 + 2.5
        await wait_until(lambda: server.session_count == 0, timeout=3)
    finally:
        await client.close()


async def test_client_killed_after_connecting_is_freed_by_ping_liveness(leak_check, server_factory):
    server = await server_factory(ping_timeout_s=1.5)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        client.send({"type": "ping"})
        await client.wait_for("pong", timeout=5)
        session = server.app[REGISTRY_KEY].get(client.session_id)
        sever(client.pc)  # kill -9: the sockets vanish, nothing is said
        took = await wait_until(lambda: server.session_count == 0, timeout=6)
        assert session.end_reason == "peer_gone"
        assert took < 1.5 + 2.5, took
    finally:
        with contextlib.suppress(Exception):
            await client.close()


# ---- idle and maximum duration ----------------------------------------------------------


async def test_idle_session_ends_with_idle_timeout(leak_check, server_factory):
    server = await server_factory(idle_timeout_s=1.5)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        client.send({"type": "ping"})  # pings keep a session alive, not busy
        end = await client.wait_for("session_end", timeout=6)
        assert end["reason"] == "idle_timeout"
        await wait_until(lambda: server.session_count == 0, timeout=3)
        assert client.events[-1]["type"] == "session_end"
    finally:
        await client.close()


async def test_max_duration_ends_even_a_busy_session(leak_check, server_factory):
    server = await server_factory(max_session_s=2.5, idle_timeout_s=60)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        await asyncio.sleep(1.0)
        # A reply that is still being spoken when the deadline comes.
        client.send({"type": "text_input", "text": "What are your opening hours on Friday?"})
        await client.wait_for("status_update", status="speaking", timeout=10)
        end = await client.wait_for("session_end", timeout=6)
        assert end["reason"] == "max_duration"
        await asyncio.sleep(0.3)
        assert client.events[-1]["type"] == "session_end", client.events[-3:]  # nothing after
        await wait_until(lambda: server.session_count == 0, timeout=3)
    finally:
        await client.close()


# ---- data-channel caps ---------------------------------------------------------------


async def test_message_flood_size_and_length_caps(server, leak_check):
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        await client.wait_for("status_update", status="idle")
        since = len(client.events)
        for _ in range(300):
            client.send({"type": "ping"})
        await asyncio.sleep(1.0)
        events = client.events[since:]
        pongs = sum(e["type"] == "pong" for e in events)
        limited = [e for e in events if e["type"] == "error" and e["code"] == "rate_limited"]
        assert 40 <= pongs < 300, pongs
        assert 1 <= len(limited) <= 2 and limited[0]["message"]
        await asyncio.sleep(2.0)  # the bucket refills: honest use works again

        since = len(client.events)
        client.send({"type": "text_input", "text": "a" * 2001})
        client.send("x" * (20 * 1024))
        client._channel.send(b"\x00" * 100)  # binary, not UTF-8 JSON
        client.send({"type": "ping"})
        await client.wait_for("pong", since=since, timeout=5)
        codes = [e["code"] for e in client.events[since:] if e["type"] == "error"]
        assert codes == ["text_too_long", "message_too_large", "invalid_message"]
        since = len(client.events)
        client.send({"type": "text_input", "text": "How much does it cost?"})
        final = await client.wait_for("llm_response", since=since, is_final=True, timeout=20)
        assert final["text"]
    finally:
        await client.close()


# ---- SIGTERM ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_ends_every_session_and_exits(tmp_path: Path, leak_check):
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ICE_HOST_ADDRESSES": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "DRAIN_TIMEOUT_S": "0",  # no drain: SIGTERM ends the calls at once (test_drain.py drains)
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "media_server",
        "--port",
        str(port),
        cwd=tmp_path,  # no .env of the developer's
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    clients: list[VoiceClient] = []
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"listening on" in line, line
        base_url = f"http://127.0.0.1:{port}"
        clients = [VoiceClient(base_url) for _ in range(2)]
        for client in clients:
            await client.connect("receptionist")
        clients[0].send({"type": "text_input", "text": "Can I book an appointment for Monday?"})
        await clients[0].wait_for("transcription", timeout=10)

        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        for client in clients:
            end = await client.wait_for("session_end", timeout=5)
            assert end["reason"] == "shutdown"
        rc = await asyncio.wait_for(proc.wait(), 10)
        took = time.monotonic() - start
        assert rc == 0, (rc, await proc.stderr.read())
        assert took < 5, took
        assert b"shutting down" in await proc.stdout.read()
    finally:
        for client in clients:
            await client.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
