"""Shared machinery for the loopback HTTP fakes (OpenAI, ElevenLabs).

A fake is an aiohttp app on 127.0.0.1 (port 0) that speaks the real wire
format and can be told to misbehave. Everything it is told lives in
``Knobs``, which tests may change while the server runs; every request is
recorded in ``FakeServer.requests`` (so tests can count retries, check
headers and bodies, and see whether the client hung up).

Misbehaviour knobs (common to every fake):

====================  ===================================================
``api_key``           expected key; a different one gets 401 (None: any)
``first_byte_delay_s`` time from the request's arrival to the status line
                      (reading and parsing the body count toward it, so a
                      benchmark's fixed provider time is the time it gets)
``chunk_delay_s``     wait between body chunks / SSE events
``chunk_size``        bytes per chunk for audio bodies
``fail_status``       with ``fail_count``: the next K requests get this
``fail_count``        status (-1: every request); see ``fail_next()``
``fail_code``         code in the error body (``insufficient_quota``,
                      ``quota_exceeded``, ...); default per status
``retry_after``       ``Retry-After`` header value sent with failures
``hang``              never answer (until the client leaves or close())
``hold_after_chunks`` send N chunks, then wait for ``release()``
``reset_after_chunks`` send N chunks, then reset the TCP connection (RST)
``truncate``          send ~60% of the body (cut mid-frame), end cleanly
``path_delays``       {path suffix: seconds}: first_byte_delay_s per route
                      (one fake, STT/LLM/TTS at their own latencies)
``content_type``      override the Content-Type of a 200 answer
``body``              override the bytes of a 200 answer
``empty_body``        a 200 answer with zero bytes
====================  ===================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import struct
import time
import wave
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass
class Knobs:
    api_key: str | None = None
    first_byte_delay_s: float = 0.0
    path_delays: dict[str, float] = field(default_factory=dict)
    chunk_delay_s: float = 0.0
    chunk_size: int = 2048
    fail_status: int | None = None
    fail_count: int = 0
    fail_code: str | None = None
    retry_after: str | None = None
    hang: bool = False
    hold_after_chunks: int | None = None
    reset_after_chunks: int | None = None
    truncate: bool = False
    content_type: str | None = None
    body: bytes | None = None
    empty_body: bool = False


@dataclass
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def wav_params(self) -> wave._wave_params | None:  # type: ignore[name-defined]
        """(nchannels, sampwidth, framerate, nframes, ...) if the upload is a WAV."""
        try:
            with wave.open(io.BytesIO(self.data)) as w:
                return w.getparams()
        except (wave.Error, EOFError):
            return None


@dataclass
class RecordedRequest:
    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent, query string included
    query: dict[str, str]
    headers: dict[str, str]  # keys lower-cased
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    status: int | None = None
    chunks_sent: int = 0
    bytes_sent: int = 0
    holding: bool = False  # waiting in hold_after_chunks
    finished: bool = False  # the whole body was written
    disconnected: bool = False  # the client left (or the server closed) before the end
    started_at: float = field(default_factory=time.monotonic)
    first_byte_at: float | None = None  # the 200 answer's status line went out
    peer: tuple[str, int] | None = None  # the client's address: same port, same connection


#: Where the middleware leaves the request's record for the route handler.
REC = web.RequestKey("rec", RecordedRequest)


async def wait_until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Poll ``predicate`` until true; raise TimeoutError after ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polling on purpose: the predicates read plain attributes, nothing to await.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def split_bytes(data: bytes, size: int) -> list[bytes]:
    size = max(1, size)
    return [data[i : i + size] for i in range(0, len(data), size)]


class FakeServer:
    """Base class: subclasses add routes and their API's error body shape."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.requests: list[RecordedRequest] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self._closing = asyncio.Event()

    # -- subclass hooks ---------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def presented_key(self, request: web.Request) -> str | None:
        raise NotImplementedError

    def error_response(
        self, request: web.Request, status: int, message: str, code: str | None
    ) -> web.Response:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024 * 1024)
        self.add_routes(app)
        # handler_cancellation: a client that hangs up cancels its handler, which is
        # how the fake notices disconnects (hang, hold, slow streams).
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def open_connections(self) -> int:
        """TCP connections the server currently holds open (keep-alive included)."""
        server = self._runner.server if self._runner else None
        return len(server.connections) if server is not None else 0

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: str | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (-1: all) with ``status``."""
        k = self.knobs
        k.fail_status, k.fail_count, k.retry_after, k.fail_code = status, count, retry_after, code

    def release(self) -> None:
        """Let every request waiting in ``hold_after_chunks`` go on (later ones hold again)."""
        event, self._release = self._release, asyncio.Event()
        event.set()

    async def close(self) -> None:
        self._closing.set()  # ends hangs and holds so shutdown does not wait on them
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- request pipeline ------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            peer=request.transport.get_extra_info("peername") if request.transport else None,
        )
        self.requests.append(rec)
        request[REC] = rec
        try:
            await self._parse_body(request, rec)
            k = self.knobs
            delay = next(
                (d for suffix, d in k.path_delays.items() if rec.path.endswith(suffix)),
                k.first_byte_delay_s,
            )
            if delay:
                await asyncio.sleep(delay - (time.monotonic() - rec.started_at))
            if k.hang:
                await self._wait_closing()
                raise web.HTTPServiceUnavailable()
            failure = self._take_failure()
            if failure is not None:
                resp: web.StreamResponse = self._error(request, failure, k.fail_code)
            elif k.api_key is not None and self.presented_key(request) != k.api_key:
                resp = self._error(request, 401, None)
            else:
                resp = await handler(request)
            rec.status = resp.status
            return resp
        except asyncio.CancelledError:
            rec.disconnected = True
            raise
        except (ConnectionError, OSError):
            rec.disconnected = True
            raise

    async def _parse_body(self, request: web.Request, rec: RecordedRequest) -> None:
        if request.content_type == "multipart/form-data":
            form = await request.post()  # cached by aiohttp; handlers may call it again
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    value.file.close()  # a SpooledTemporaryFile; the bytes are kept
                    rec.files[name] = UploadedFile(value.filename, value.content_type, data)
                else:
                    rec.form[name] = str(value)
        elif request.content_type == "application/json" and request.can_read_body:
            try:
                rec.json = await request.json()
            except ValueError:
                rec.json = None

    def _take_failure(self) -> int | None:
        k = self.knobs
        if k.fail_status is None or k.fail_count == 0:
            return None
        if k.fail_count > 0:
            k.fail_count -= 1
        return k.fail_status

    def _error(self, request: web.Request, status: int, code: str | None) -> web.Response:
        key = self.presented_key(request) or ""
        # Quote the key that was sent in 401 bodies on purpose: it is the worst case a
        # provider must scrub (OpenAI itself echoes a masked form of it).
        message = f"Incorrect API key provided: {key}." if status == 401 else f"fake error {status}"
        resp = self.error_response(request, status, message, code)
        if self.knobs.retry_after is not None:
            resp.headers["Retry-After"] = self.knobs.retry_after
        return resp

    async def _wait_closing(self) -> None:
        await self._closing.wait()

    async def _hold(self, rec: RecordedRequest) -> None:
        rec.holding = True
        release = asyncio.ensure_future(self._release.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({release, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            release.cancel()
            closing.cancel()
            rec.holding = False

    @staticmethod
    def _reset(request: web.Request) -> None:
        """Close the socket with SO_LINGER 0, so the peer sees an RST mid-body."""
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def send_body(
        self,
        request: web.Request,
        pieces: bytes | Sequence[bytes],
        *,
        content_type: str,
        chunked: bool = True,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Write a 200 answer piece by piece, applying the body knobs."""
        rec: RecordedRequest = request[REC]
        k = self.knobs
        if k.body is not None:
            pieces = k.body
        if k.empty_body:
            pieces = b""
        if isinstance(pieces, bytes):
            pieces = split_bytes(pieces, k.chunk_size)
        pieces = list(pieces)
        if k.truncate:
            # Cut at an odd offset past the middle: lands inside an MP3 frame.
            data = b"".join(pieces)
            pieces = split_bytes(data[: int(len(data) * 0.6) | 1], k.chunk_size)
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = k.content_type or content_type
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = sum(len(p) for p in pieces)
        await resp.prepare(request)
        rec.first_byte_at = time.monotonic()
        for i, piece in enumerate(pieces):
            if k.hold_after_chunks is not None and i == k.hold_after_chunks:
                await self._hold(rec)
            if k.reset_after_chunks is not None and i == k.reset_after_chunks:
                rec.disconnected = True
                self._reset(request)
                return resp
            if i and k.chunk_delay_s:
                await asyncio.sleep(k.chunk_delay_s)
            await resp.write(piece)
            rec.chunks_sent += 1
            rec.bytes_sent += len(piece)
        await resp.write_eof()
        rec.finished = True
        return resp
