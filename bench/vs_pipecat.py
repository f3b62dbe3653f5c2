"""Our server against Pipecat, side by side: same fakes, same client, one run.

Three systems answer the same spoken turns from the same aiortc client
(``tests.voice_client``) over loopback, against one process of loopback
fakes (bench.fakes_server: STT 150 ms, LLM first token 200 ms + 20 ms a
token, TTS first byte 100 ms then 4 KiB every 20 ms, PCM 24 kHz):

- ours: ``TURN_DETECTOR=silence``, ``TURN_SILENCE_MS=400`` (``ours-realtime``:
  the same with ``STT_PROVIDER=openai-realtime``, the fake's realtime
  transcription answering each commit after the same 150 ms; ``ours-off``:
  ``PREEMPTIVE_REPLY=off``, what the preemptive reply is worth);
- Pipecat 1.14 SmallWebRTC, Silero VAD ``stop_secs=0.4`` ending the turn;
- Pipecat 1.14 SmallWebRTC, its default Smart Turn v3 analyzer.

Pipecat (pipecat-ai, BSD-2-Clause) lives in a bench-only venv,
``bench/.pipecat-venv``, that this script creates with uv when it is missing
(``--setup`` does only that; it needs the package registry, so run it before
entering a loopback-only namespace). It is never a project dependency.

Per turn, on one clock (``time.monotonic()`` is machine-wide, and the fakes
log when each request arrived and when its first byte left):

- v2v: the client's last voiced frame sent -> first voiced reply frame heard;
  ``net`` subtracts the 400 ms of silence every row's detector waits for;
- stt_req: last voiced frame -> the STT request reaching the fake, minus 400;
- tts_heard: the TTS answer's first byte -> first voiced reply frame heard.

    uv run python -m bench.vs_pipecat --setup
    unshare -n sh -c 'ip link set lo up && uv run python -m bench.vs_pipecat'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from bench.common import (
    RESULTS,
    ROOT,
    fakes_env,
    fakes_process,
    free_port,
    percentile,
    print_table,
    run_bench,
    server_process,
)
from bench.latency import UTTERANCE, trailing_silence_s
from tests.audio_fixtures import speech_48k
from tests.voice_client import VoiceClient

SILENCE_S = 0.400
STT_S, LLM_S, TOKEN_S, TTS_S = 0.150, 0.200, 0.020, 0.100
TTS_CHUNK = 4096
REPLY = "Sure, I can help you with that. What time suits you?"
PIPECAT = "pipecat-ai[webrtc,silero,openai]==1.14.0"
VENV = ROOT / "bench" / ".pipecat-venv"
VENV_PYTHON = VENV / "bin" / "python"
BENCH_AGENT = """
[agents.bench]
name = "Bench"
description = "vs_pipecat benchmark agent"
prompt = "You are a benchmark. reply-10-tokens"
max_tokens = 1000
"""


def ensure_pipecat_venv() -> None:
    """The bench-only venv with pipecat-ai (created once, by uv)."""
    probe = [str(VENV_PYTHON), "-c", "import pipecat.transports.smallwebrtc.transport"]
    if VENV_PYTHON.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    subprocess.run(["uv", "venv", "-q", str(VENV)], check=True)
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(VENV_PYTHON), PIPECAT, "aiohttp"],
        check=True,
    )


class PipecatClient(VoiceClient):
    """The same client, signalling Pipecat's way (no events channel to wait on)."""

    async def connect(self, agent_id: str = "", timeout: float = 15.0, token: str | None = None):
        pc = self.pc
        pc.addTrack(self.mic)
        pc.on("track", self._on_track)
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()

        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.base_url}/api/offer",
                json={"sdp": pc.localDescription.sdp, "type": "offer"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await response.json()
        self.session_id = body["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        await asyncio.wait_for(connected.wait(), timeout)
        return {}


@contextlib.asynccontextmanager
async def pipecat_bot(openai_url: str, turn: str) -> AsyncIterator[str]:
    port = free_port()
    log = (RESULTS / f"pipecat_bot_{turn}.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        str(VENV_PYTHON),
        str(ROOT / "bench" / "pipecat" / "bot.py"),
        f"--port={port}",
        f"--openai-base-url={openai_url}",
        f"--turn={turn}",
        f"--stop-secs={SILENCE_S}",
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"pipecat bot exited; see {log.name}")
        yield json.loads(line)["url"]
    finally:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        log.close()


async def until_quiet(client: VoiceClient, quiet_s: float = 1.0, limit_s: float = 15.0) -> None:
    """Until no voiced reply frame has arrived for ``quiet_s`` (the reply ended)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        last = client.audio.last_voiced_at or 0.0
        if time.monotonic() - last >= quiet_s:
            return
        await asyncio.sleep(0.1)


async def run_turns(client: VoiceClient, turns: int) -> list[dict[str, float]]:
    speech = speech_48k(UTTERANCE)
    tail = trailing_silence_s(speech)
    out = []
    # One turn more than asked: the first warms connections to the fakes and
    # model sessions in every system alike, and is not counted.
    for _ in range(turns + 1):
        speech_end = await client.say(speech) - tail
        heard = await client.first_voiced_after(speech_end, timeout=20)
        out.append({"speech_end": speech_end, "heard": heard})
        await until_quiet(client)
    return out[1:]


def place_requests(turns: list[dict[str, float]], requests: list[dict[str, Any]]) -> list[dict]:
    """Each turn's STT request and first TTS answer, from the fakes' log."""
    rows = []
    for turn in turns:
        after = [r for r in requests if r["at"] >= turn["speech_end"] and r["at"] < turn["heard"]]
        stt = next((r for r in after if r["path"].endswith("/audio/transcriptions")), None)
        tts = next(
            (r for r in after if "text-to-speech" in r["path"] or r["path"].endswith("/speech")),
            None,
        )
        v2v = (turn["heard"] - turn["speech_end"]) * 1000
        rows.append(
            {
                "v2v_ms": v2v,
                "v2v_net_ms": v2v - SILENCE_S * 1000,
                "stt_req_ms": (stt["at"] - turn["speech_end"] - SILENCE_S) * 1000 if stt else None,
                "tts_heard_ms": (
                    (turn["heard"] - tts["first_byte_at"]) * 1000
                    if tts and tts["first_byte_at"]
                    else None
                ),
            }
        )
    return rows


def summary(name: str, rows: list[dict]) -> dict[str, Any]:
    def p50(key: str) -> float | None:
        return percentile([r[key] for r in rows if r[key] is not None], 50)

    return {
        "system": name,
        "turns": len(rows),
        "v2v_net_p50": p50("v2v_net_ms"),
        "v2v_net_p95": percentile([r["v2v_net_ms"] for r in rows], 95),
        "stt_req_p50": p50("stt_req_ms"),
        "tts_heard_p50": p50("tts_heard_ms"),
    }


PROM_LINE = re.compile(r"^(voice_agent_\S+) (\S+)$", re.M)  # name{labels} value
PREEMPTIVE_METRICS = {
    "speculative_stt": "voice_agent_speculative_stt_total",
    "started": 'voice_agent_preemptive_replies_total{outcome="started"',
    "adopted": 'voice_agent_preemptive_replies_total{outcome="adopted"',
    "discarded": 'voice_agent_preemptive_replies_total{outcome="discarded"',
    "wasted_tokens": "voice_agent_preemptive_wasted_tokens_total",
}
STAGES = ("end_of_turn_wait_ms", "transcript_ms", "first_token_ms", "first_tts_byte_ms")
STAGES += ("first_audio_ms",)


async def measure(client: VoiceClient, log_url: str, turns: int, agent: str) -> list[dict]:
    try:
        await client.connect(agent)
        await asyncio.sleep(1.0)
        timeline = await run_turns(client, turns)
    finally:
        await client.close()
    async with aiohttp.ClientSession() as http, http.get(f"{log_url}/requests") as r:
        requests = await r.json()
    rows = place_requests(timeline, requests)
    # Our server's own account of each turn (ms from its end of speech); the
    # first turn is the uncounted warm-up, as in run_turns.
    metrics = [e for e in client.events if e.get("type") == "turn_metrics"][1:]
    for row, m in zip(rows, metrics, strict=False):
        row["server"] = {k: m.get(k) for k in STAGES}
    return rows


async def run(turns: int, systems: list[str]) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    fakes = fakes_process(
        f"--first-byte-delay={STT_S}",
        f"--llm-delay={LLM_S}",
        f"--token-delay={TOKEN_S}",
        f"--tts-delay={TTS_S}",
        f"--tts-chunk-size={TTS_CHUNK}",
        f"--tts-chunk-delay={TOKEN_S}",
        "--replies",
        json.dumps({"reply-10-tokens": REPLY}),
    )
    results: dict[str, Any] = {"rows": [], "turns": {}}
    async with fakes as urls:
        for system in systems:
            if system.startswith("ours"):
                stt = "openai-realtime" if system == "ours-realtime" else "openai"
                rows = await measure_ours(urls, turns, stt, preemptive=system != "ours-off")
            else:
                async with pipecat_bot(urls["openai"], system.split("-")[1]) as url:
                    rows = await measure(PipecatClient(url), urls["log"], turns, "")
            results["turns"][system] = rows
            results["rows"].append(summary(system, rows))
    table = results["rows"]
    staged = []
    for system in (s for s in systems if s.startswith("ours")):
        server = [t["server"] for t in results["turns"][system] if "server" in t]
        stages = {k: percentile([m[k] for m in server if m[k] is not None], 50) for k in STAGES}
        # End of turn -> final transcript: the part of STT that is left when the turn ends.
        eot_to_text = [
            m["transcript_ms"] - m["end_of_turn_wait_ms"]
            for m in server
            if m["transcript_ms"] is not None and m["end_of_turn_wait_ms"] is not None
        ]
        staged.append({"system": system, **stages, "eot_to_text": percentile(eot_to_text, 50)})
    results["server_stages_p50"] = staged
    if staged:
        print("our server's own stages (median ms from its end of speech):")
        print_table(staged, list(staged[0]))
    ours = next((r for r in table if r["system"] == "ours"), None)
    for row in table:
        if ours and row["v2v_net_p50"] and ours["v2v_net_p50"] is not None:
            row["ours_ratio"] = ours["v2v_net_p50"] / row["v2v_net_p50"]
    print("median ms; v2v net of the 400 ms silence; stt_req beyond it; tts_heard from first byte")
    columns = ["system", "turns", "v2v_net_p50", "v2v_net_p95", "stt_req_p50", "tts_heard_p50"]
    print_table(table, [*columns, "ours_ratio"])
    results["fixed"] = {"stt_s": STT_S, "llm_s": LLM_S, "token_s": TOKEN_S, "tts_s": TTS_S}
    return results


async def measure_ours(
    urls: dict[str, str], turns: int, stt: str, *, preemptive: bool
) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents.toml"
        agents.write_text(BENCH_AGENT)
        env = {
            **fakes_env(urls),
            "STT_PROVIDER": stt,
            "PREEMPTIVE_REPLY": "on" if preemptive else "off",
            "LLM_PROVIDER": "openai",
            "TTS_PROVIDER": "elevenlabs",
            "ELEVENLABS_OUTPUT_FORMAT": "pcm_24000",
            "TURN_DETECTOR": "silence",
            "TURN_SILENCE_MS": str(int(SILENCE_S * 1000)),
        }
        with server_process(["-m", "media_server", "--agents-file", str(agents)], env) as srv:
            await srv.wait_ready()
            rows = await measure(VoiceClient(srv.base_url), urls["log"], turns, "bench")
            async with aiohttp.ClientSession() as http, http.get(f"{srv.base_url}/metrics") as r:
                text = await r.text()
    # What speculation cost, over the warm-up turn too (turns + 1).
    cost = {
        name: sum(float(v) for k, v in PROM_LINE.findall(text) if k.startswith(metric))
        for name, metric in PREEMPTIVE_METRICS.items()
    }
    print(f"ours ({stt}), {turns + 1} turns: {cost}")
    return [{**row, "preemptive_run_totals": cost} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument(
        "--systems",
        default="ours,ours-off,ours-realtime,pipecat-vad,pipecat-smart",
        help="comma-separated",
    )
    parser.add_argument("--setup", action="store_true", help="only create the Pipecat venv")
    args = parser.parse_args()
    systems = args.systems.split(",")
    if any(s.startswith("pipecat") for s in systems):
        ensure_pipecat_venv()
    if args.setup:
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    run_bench("vs_pipecat", run, args.turns, systems)


if __name__ == "__main__":
    main()
