"""A loopback fake of the OpenAI HTTP API (and of OpenAI-compatible servers).

Start it with ``server = await start_openai_fake(**knobs)``; point the SDK at
``server.base_url`` (which ends in ``/v1``, like ``OPENAI_BASE_URL``); read
``server.requests``; change ``server.knobs`` at any time; ``await
server.close()``.

Routes (wire formats as the real API):

- ``POST /v1/audio/transcriptions``: multipart (``file``, ``model``,
  ``response_format`` = ``json`` | ``text`` | ``verbose_json``, ``language``).
  ``verbose_json`` carries ``segments`` with ``no_speech_prob`` and
  ``avg_logprob``; like the real API, the ``gpt-4o*-transcribe`` models refuse
  it with a 400.
- ``POST /v1/chat/completions``: with ``stream: true`` an SSE stream of
  ``chat.completion.chunk`` objects (role delta first, one content delta per
  token, a ``finish_reason`` chunk, a usage chunk when asked, ``data: [DONE]``);
  without it one ``chat.completion`` object.
- ``POST /v1/audio/speech``: chunked ``mp3`` (real MP3 bytes, 24 kHz) or
  ``pcm`` (s16le mono 24 kHz) or ``wav``.
- ``GET /v1/models``.
- ``GET /v1/realtime``: realtime transcription over a WebSocket
  (``server.realtime``, openai_realtime_fake.py).

Errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``.

Knobs beyond the common ones in ``http_fake.Knobs``:

- ``transcript``: str, or ``callable(RecordedRequest) -> str``
- ``segments``: None (one confident segment of ``transcript``) or a list of
  dicts with at least ``text``; ``no_speech_prob``/``avg_logprob`` default to
  a confident value. The top-level ``text`` is all segments joined, as Whisper
  does (hallucinated ones included).
- ``transcript_language``: what verbose_json reports (default ``english``)
- ``reject_verbose_json``: answer 400 to verbose_json whatever the model
  (as some OpenAI-compatible servers do)
- ``reply``: str, or ``callable(request_json) -> str``; streamed word by word
  (``chunk_delay_s`` between tokens). ``max_tokens`` cuts it (finish ``length``).
- ``include_usage``: always send the usage chunk (otherwise only when
  ``stream_options.include_usage`` is asked for)
- ``empty_choices_chunk``: a first chunk with ``choices: []`` (Azure does this)
- ``null_content_delta``: a chunk whose delta has ``content: null``
- ``stream_error_after_tokens``: after N tokens send ``data: {"error": ...}``
- ``speech_seconds``: length of the synthesized audio
- ``tool_calls``: None, or ``callable(request_json) -> list | None``: when it
  returns calls (``{"name", "arguments": dict}``), the reply is those calls,
  streamed as OpenAI does: a role delta with ``content: null``, per call a
  first ``delta.tool_calls`` piece with ``index``, ``id``, ``type`` and the
  name (arguments ``""``), then the arguments JSON in small pieces, then
  ``finish_reason: "tool_calls"``. None or [] means answer in words.
  Needs ``tools`` in the request, as the real API does. ``tool_preamble``:
  words streamed as ``content`` before the calls, as a model that says
  "Let me check." first does.
- ``reject_tools``: answer 400 to any request with ``tools``, as Ollama does
  for a model that cannot call them ("... does not support tools")
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .http_fake import REC, FakeServer, Knobs, RecordedRequest
from .mp3_fixture import mp3_bytes, tone_pcm
from .openai_realtime_fake import RealtimeTranscription

DEFAULT_REPLY = "Hello! Thanks for calling. How can I help you today?"
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("invalid_request_error", "payment_required"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class OpenAIKnobs(Knobs):
    transcript: str | Callable[[RecordedRequest], str] = "Hello, I would like to book a room."
    segments: list[dict[str, Any]] | None = None
    transcript_language: str = "english"
    reject_verbose_json: bool = False
    reply: str | Callable[[dict[str, Any]], str] = DEFAULT_REPLY
    include_usage: bool = False
    empty_choices_chunk: bool = False
    null_content_delta: bool = False
    stream_error_after_tokens: int | None = None
    speech_seconds: float = 1.0
    tool_calls: Callable[[dict[str, Any]], list[dict[str, Any]] | None] | None = None
    tool_preamble: str = ""  # words streamed before the calls ("Let me check.")
    reject_tools: bool = False


def tokens_of(text: str) -> list[str]:
    """Split like a tokenizer might for streaming: words with their leading space."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _sse(obj: object) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


class OpenAIFake(FakeServer):
    knobs: OpenAIKnobs

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    realtime: RealtimeTranscription

    def add_routes(self, app: web.Application) -> None:
        self.realtime = RealtimeTranscription()
        app.router.add_get("/v1/realtime", self.realtime.handle)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/v1/models", self._models)

    def presented_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def error_response(
        self,
        request: web.Request,
        status: int,
        message: str,
        code: str | None,
        param: str | None = None,
    ) -> web.Response:
        default_type, default_code = _ERROR_TYPES.get(status, ("server_error", None))
        if code == "insufficient_quota":
            default_type = "insufficient_quota"
        body = {
            "error": {
                "message": message,
                "type": default_type,
                "param": param,
                "code": code or default_code,
            }
        }
        return web.json_response(body, status=status)

    def _invalid(self, request: web.Request, message: str, param: str | None) -> web.Response:
        return self.error_response(request, 400, message, None, param)

    # -- transcriptions ---------------------------------------------------------

    def _segments(self, rec: RecordedRequest) -> list[dict[str, Any]]:
        k = self.knobs
        given = k.segments
        if given is None:
            text = k.transcript(rec) if callable(k.transcript) else k.transcript
            given = [{"text": " " + text}] if text else []
        segments, start = [], 0.0
        for i, seg in enumerate(given):
            end = start + 1.5
            segments.append(
                {
                    "id": i,
                    "seek": 0,
                    "start": start,
                    "end": end,
                    "text": seg["text"],
                    "tokens": [50364 + i],
                    "temperature": 0.0,
                    "avg_logprob": seg.get("avg_logprob", -0.2),
                    "compression_ratio": 1.2,
                    "no_speech_prob": seg.get("no_speech_prob", 0.01),
                }
            )
            start = end
        return segments

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        rec: RecordedRequest = request[REC]
        upload = rec.files.get("file")
        model = rec.form.get("model")
        fmt = rec.form.get("response_format", "json")
        if upload is None or not upload.data:
            return self._invalid(request, "Missing required parameter: 'file'.", "file")
        if not model:
            return self._invalid(request, "Missing required parameter: 'model'.", "model")
        if fmt not in ("json", "text", "verbose_json"):
            msg = f"Unsupported response_format '{fmt}'."
            return self._invalid(request, msg, "response_format")
        if fmt == "verbose_json" and (self.knobs.reject_verbose_json or model.startswith("gpt-4o")):
            return self._invalid(
                request,
                f"response_format 'verbose_json' is not compatible with model '{model}'.",
                "response_format",
            )
        segments = self._segments(rec)
        text = "".join(s["text"] for s in segments).strip()
        if fmt == "text":
            return await self.send_body(
                request, (text + "\n").encode(), content_type="text/plain", chunked=False
            )
        if fmt == "json":
            body: dict[str, Any] = {"text": text}
        else:
            params = upload.wav_params
            duration = params.nframes / params.framerate if params else 0.0
            body = {
                "task": "transcribe",
                "language": self.knobs.transcript_language,
                "duration": duration,
                "text": text,
                "segments": segments,
            }
        return await self.send_body(
            request, json.dumps(body).encode(), content_type="application/json", chunked=False
        )

    # -- chat completions -----------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        rec: RecordedRequest = request[REC]
        body = rec.json
        if not isinstance(body, dict) or not body.get("model"):
            return self._invalid(request, "you must provide a model parameter", "model")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self._invalid(request, "'messages' must be a non-empty array", "messages")
        k = self.knobs
        if k.reject_tools and body.get("tools"):
            return self._invalid(request, f"{body['model']} does not support tools", None)
        calls = k.tool_calls(body) if k.tool_calls is not None else None
        if calls:
            if not body.get("tools"):
                return self._invalid(request, "tool calls need 'tools'", "tools")
            return await self._tool_call_reply(request, body, calls)
        reply = k.reply(body) if callable(k.reply) else k.reply
        tokens = tokens_of(reply)
        finish = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), body["model"]
        prompt = " ".join(str(m.get("content", "")) for m in body["messages"])
        usage = {
            "prompt_tokens": len(tokens_of(prompt)),
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]

        if not body.get("stream"):
            completion = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(tokens)},
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            }
            return web.json_response(completion)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }
            return _sse(obj)

        events: list[bytes] = []
        if k.empty_choices_chunk:
            events.append(_sse({"id": "", "object": "", "created": 0, "model": "", "choices": []}))
        events.append(chunk({"role": "assistant", "content": ""}))
        if k.null_content_delta:
            events.append(chunk({"content": None}))
        for i, token in enumerate(tokens):
            if k.stream_error_after_tokens is not None and i == k.stream_error_after_tokens:
                events.append(
                    _sse(
                        {
                            "error": {
                                "message": "The server had an error while processing your request.",
                                "type": "server_error",
                                "param": None,
                                "code": None,
                            }
                        }
                    )
                )
                break
            events.append(chunk({"content": token}))
        else:
            events.append(chunk({}, finish))
            wants_usage = (body.get("stream_options") or {}).get("include_usage")
            if wants_usage or k.include_usage:
                events.append(
                    _sse(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                )
            events.append(b"data: [DONE]\n\n")
        return await self.send_body(
            request, events, content_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def _tool_call_reply(
        self, request: web.Request, body: dict[str, Any], calls: list[dict[str, Any]]
    ) -> web.StreamResponse:
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), body["model"]
        wire = [
            {
                "id": f"call_{uuid.uuid4().hex[:20]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in calls
        ]
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": wire}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }
            )

        events = [chunk({"role": "assistant", "content": None})]
        events += [chunk({"content": t}) for t in tokens_of(self.knobs.tool_preamble)]
        for index, call in enumerate(wire):
            first = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(chunk({"tool_calls": [{"index": index, **first}]}))
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 7):  # OpenAI sends a few characters a piece
                piece = {"index": index, "function": {"arguments": arguments[start : start + 7]}}
                events.append(chunk({"tool_calls": [piece]}))
        events.append(chunk({}, "tool_calls"))
        events.append(b"data: [DONE]\n\n")
        return await self.send_body(
            request, events, content_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    # -- speech -----------------------------------------------------------------------

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        rec: RecordedRequest = request[REC]
        body = rec.json
        if not isinstance(body, dict):
            return self._invalid(request, "We could not parse the JSON body of your request.", None)
        for name in ("model", "input", "voice"):
            if not body.get(name):
                return self._invalid(request, f"Missing required parameter: '{name}'.", name)
        fmt = body.get("response_format", "mp3")
        seconds = self.knobs.speech_seconds
        if fmt == "mp3":
            data, ctype = await asyncio.to_thread(mp3_bytes, seconds, 24000), "audio/mpeg"
        elif fmt == "pcm":
            data, ctype = tone_pcm(seconds, 24000), "audio/pcm"
        elif fmt == "wav":
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(24000)
                w.writeframes(tone_pcm(seconds, 24000))
            data, ctype = buf.getvalue(), "audio/wav"
        else:
            msg = f"response_format '{fmt}' is not supported by this fake."
            return self._invalid(request, msg, "response_format")
        return await self.send_body(request, data, content_type=ctype)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        ids = ["gpt-4o-mini", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-tts"]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "openai"} for i in ids]
        return web.json_response({"object": "list", "data": data})


async def start_openai_fake(**knobs: Any) -> OpenAIFake:
    """Start the fake on 127.0.0.1 (free port); keyword arguments set ``OpenAIKnobs``."""
    return await OpenAIFake(OpenAIKnobs(**knobs)).start()
