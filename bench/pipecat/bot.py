"""A Pipecat SmallWebRTC bot for bench.vs_pipecat (runs in the bench-only venv).

A script, not a module of the ``bench`` package (whose modules the project's
interpreter imports): only ``bench/.pipecat-venv`` can import it.

Not part of the project: it imports ``pipecat`` (pipecat-ai from the registry,
BSD-2-Clause), which only ``bench/.pipecat-venv`` has; bench.vs_pipecat creates
that venv and starts this file with its interpreter. Configured the way
Pipecat's docs recommend: Silero VAD, OpenAI Whisper STT, OpenAI LLM and
OpenAI TTS (pcm), all pointed at the same loopback fakes as our server.

``--turn vad``: the turn ends when Silero VAD reports the end of speech
(``stop_secs`` = ``--stop-secs``), nothing waited after it.
``--turn smart``: Pipecat's default stop strategy, the Smart Turn v3 analyzer
(bundled ONNX model), with Silero VAD at its default parameters.

Serves ``POST /api/offer`` ({"sdp", "type"} -> {"sdp", "type", "session_id"})
on 127.0.0.1 and prints one JSON line with its URL when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import aioice.ice
from aiohttp import web
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

SYSTEM_PROMPT = "You are a benchmark. reply-10-tokens"


def loopback_candidates_only() -> None:
    """aioice never offers 127.0.0.1 by itself (as in media_server.rtc.ice)."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def user_params(turn: str, stop_secs: float) -> LLMUserAggregatorParams:
    if turn == "vad":
        return LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=stop_secs)),
            user_turn_strategies=UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)]
            ),
        )
    # Pipecat's defaults: Silero at its own parameters, Smart Turn v3 to stop.
    return LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())


async def run_bot(connection: SmallWebRTCConnection, args: argparse.Namespace) -> None:
    transport = SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
    )
    key, base = "sk-bench", args.openai_base_url
    stt = OpenAISTTService(api_key=key, base_url=base, model="whisper-1")
    llm = OpenAILLMService(api_key=key, base_url=base, model="gpt-4o-mini")
    tts = OpenAITTSService(api_key=key, base_url=base, voice="alloy")
    context = LLMContext([{"role": "system", "content": SYSTEM_PROMPT}])
    pair = LLMContextAggregatorPair(context, user_params=user_params(args.turn, args.stop_secs))
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            pair.user(),
            llm,
            tts,
            transport.output(),
            pair.assistant(),
        ]
    )
    task = PipelineTask(pipeline, params=PipelineParams(enable_metrics=True))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client):
        await task.cancel()

    await PipelineRunner(handle_sigint=False).run(task)


async def serve(args: argparse.Namespace) -> None:
    loopback_candidates_only()
    bots: set[asyncio.Task[None]] = set()

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        connection = SmallWebRTCConnection()
        await connection.initialize(sdp=body["sdp"], type=body["type"])
        bot = asyncio.create_task(run_bot(connection, args))
        bots.add(bot)
        bot.add_done_callback(bots.discard)
        answer = connection.get_answer()
        return web.json_response({**answer, "session_id": answer["pc_id"]})

    app = web.Application()
    app.router.add_post("/api/offer", offer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    print(json.dumps({"url": f"http://127.0.0.1:{args.port}"}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    for bot in list(bots):
        bot.cancel()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--openai-base-url", required=True)
    parser.add_argument("--turn", choices=("vad", "smart"), default="vad")
    parser.add_argument("--stop-secs", type=float, default=0.4)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
