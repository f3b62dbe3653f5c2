"""Hearing the person, not the room: labelled timelines through the server over WebRTC.

The voice server runs in its own process with the cloud providers pointed at
the loopback fakes (run here, so their requests can be counted: every
``/v1/audio/transcriptions`` request is an STT call). A Python aiortc client
plays each timeline into its microphone through a room (tests/echo_room.py)
that can echo the agent's voice back, late, quieter and through a small
speaker, as a speakerphone without echo cancellation does:

- ``noise``: hum, fan, keyboard, music, knocks, dishes, clicks, mains hum,
  beeps, pink noise (4 s each, the agent quiet): turns started, STT calls;
- ``speech in noise``: a sentence over pink noise at 10 dB SNR: one turn;
- ``echo``: a reply echoed at -6/-12/-20 dB, 30-150 ms late: self-interruptions
  (the reply cut) and STT calls on the agent's own voice;
- ``backchannel``: "mm-hmm", "okay", a cough while the agent speaks: false
  barge-ins (the reply cut) and the words lost (the reply's voiced audio the
  client got, against the same reply undisturbed, in ms);
- ``interruption``: "Wait, stop, I have a question about my bill" over the
  reply (also over its echo at -12 dB): missed barge-ins, and the stop time
  from the first frame of that speech to the last voiced frame of the reply
  the client got (transport included).

Configurations side by side in one run: ``webrtcvad`` with no echo guard
(the old behaviour) and the new listening (Silero, ECHO_GUARD=aec).

    uv run python -m bench.listening [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np

from bench.common import fakes_env, percentile, print_table, run_bench, server_process
from media_server.audio.pcm import PcmResampler
from tests.audio_fixtures import speech_48k
from tests.echo_room import RoomMic
from tests.fakes.elevenlabs_fake import start_elevenlabs_fake
from tests.fakes.openai_fake import start_openai_fake
from tests.room_noises import noises as room_noises
from tests.room_noises import pink
from tests.voice_client import VoiceClient

REPLY = (
    "Your appointment is on Tuesday at ten in the morning. "
    "Please bring your insurance card and arrive a little early. "
    "If you need to change it, just call us back any time."
)
CONFIGS = {
    "webrtcvad, no guard": {"VAD_PROVIDER": "webrtcvad", "ECHO_GUARD": "off"},
    "silero + aec": {"VAD_PROVIDER": "silero", "ECHO_GUARD": "aec"},
}
ECHOES = [(-6, 30), (-6, 150), (-12, 80), (-20, 150)]
RATE = 48000


def _to_48k(pcm16k: bytes) -> bytes:
    resampler = PcmResampler(16000, 1, RATE)
    return resampler.convert(pcm16k) + resampler.flush()


def noises() -> dict[str, bytes]:
    """The VAD tests' room noises (tests/room_noises.py), 48 kHz."""
    return {name: _to_48k(pcm) for name, pcm in room_noises().items()}


def cough() -> bytes:
    """A cough: two bursts of band-passed noise, 150 ms each."""
    rng = np.random.default_rng(5)
    n = int(0.15 * RATE)
    burst = np.convolve(rng.standard_normal(n), np.ones(12) / 12, "same") * np.hanning(n)
    x = np.concatenate([burst, np.zeros(int(0.1 * RATE)), burst * 0.7]) * 12000
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def speech_in_noise() -> bytes:
    words = np.frombuffer(speech_48k("I would like to book a table for two tonight."), "<i2")
    speech = words.astype(np.float64)
    pad = np.zeros(int(1.5 * RATE))
    speech = np.concatenate([pad, speech, pad])
    rms = float(np.sqrt(np.mean(words.astype(np.float64) ** 2)))
    noise = pink(speech.size / 16000 / 3, np.random.default_rng(2))
    noise = np.repeat(noise, 3)[: speech.size]
    noise *= (rms / 10 ** (10 / 20)) / float(np.sqrt(np.mean(noise**2)))
    return np.clip(speech + noise, -32768, 32767).astype("<i2").tobytes()


class Run:
    """One configuration's server, and the fakes' request log."""

    def __init__(self, base_url: str, openai: Any) -> None:
        self.base_url = base_url
        self.openai = openai

    def stt_calls(self) -> int:
        return sum(r.path == "/v1/audio/transcriptions" for r in self.openai.requests)

    async def call(self, echo: tuple[float, float] | None = None) -> tuple[VoiceClient, RoomMic]:
        client = VoiceClient(self.base_url)
        room = RoomMic(level_db=echo[0] if echo else None, delay_ms=echo[1] if echo else 0)
        client.mic = room
        client.on_audio = room.hear
        await client.connect("receptionist")
        await asyncio.sleep(0.5)
        return client, room

    async def reply(
        self, echo: tuple[float, float] | None = None, speak: bytes | None = None
    ) -> dict[str, Any]:
        """A reply (echoed if ``echo``), with ``speak`` said 1.5 s into it."""
        client, room = await self.call(echo)
        try:
            stt_before = self.stt_calls()
            since = len(client.events)
            client.send({"type": "text_input", "text": "When is my appointment?"})
            await client.wait_for("status_update", since=since, status="speaking", timeout=20)
            spoke_at = None
            if speak is not None:
                await asyncio.sleep(1.5)
                spoke_at = time.monotonic() + _first_voiced_s(speak)
                await room.say(speak)
            metrics = await client.wait_for("turn_metrics", since=since, timeout=40)
            await asyncio.sleep(1.0)  # the jitter buffer drains; an echo turn would end
            voiced = client.audio.voiced_times
            stop_ms = None
            if spoke_at is not None and metrics.get("interrupted"):
                last = max((t for t in voiced if t < spoke_at + 3), default=spoke_at)
                stop_ms = max(0.0, (last - spoke_at) * 1000)
            return {
                "interrupted": bool(metrics.get("interrupted")),
                "voiced_ms": len(voiced) * 20,
                "stt_calls": self.stt_calls() - stt_before,
                "stop_ms": stop_ms,
            }
        finally:
            await client.close()

    async def noise(self, sounds: dict[str, bytes]) -> dict[str, dict[str, int]]:
        client, room = await self.call()
        out = {}
        try:
            for name, pcm in sounds.items():
                stt, since = self.stt_calls(), len(client.events)
                await room.say(pcm)
                await asyncio.sleep(2.5)  # any turn it started is over
                turns = client.types(since).count("status:listening")
                out[name] = {"turns": turns, "stt_calls": self.stt_calls() - stt}
        finally:
            await client.close()
        return out


def _first_voiced_s(pcm: bytes) -> float:
    samples = np.abs(np.frombuffer(pcm, "<i2").astype(np.int32))
    loud = np.nonzero(samples > 1000)[0]
    return float(loud[0]) / RATE if loud.size else 0.0


async def measure(run: Run, quick: bool) -> dict[str, Any]:
    sounds = noises()
    if quick:
        sounds = {k: sounds[k] for k in ("pink noise", "keyboard", "knocks", "dishes")}
    result: dict[str, Any] = {"noise": await run.noise(sounds)}
    result["speech_in_noise"] = (await run.noise({"speech at 10 dB SNR": speech_in_noise()}))[
        "speech at 10 dB SNR"
    ]
    echoes = ECHOES[:2] if quick else ECHOES
    result["echo"] = {f"{db} dB, {ms} ms": await run.reply(echo=(db, ms)) for db, ms in echoes}
    result["undisturbed"] = await run.reply()
    backchannels = {
        "mm-hmm": speech_48k("mm hmm"),
        "okay": speech_48k("okay"),
        "cough": cough(),
    }
    result["backchannel"] = {k: await run.reply(speak=v) for k, v in backchannels.items()}
    phrase = speech_48k("Wait, stop, I have a question about my bill.")
    rounds = 2 if quick else 4
    result["interruption"] = [await run.reply(speak=phrase) for _ in range(rounds)]
    result["interruption_over_echo"] = [
        await run.reply(echo=(-12, 80), speak=phrase) for _ in range(rounds // 2)
    ]
    return result


def summarize(name: str, r: dict[str, Any]) -> dict[str, Any]:
    cuts = r["interruption"] + r["interruption_over_echo"]
    stops = [c["stop_ms"] for c in cuts if c["stop_ms"] is not None]
    full = r["undisturbed"]["voiced_ms"]
    kept_bc = [b for b in r["backchannel"].values() if not b["interrupted"]]
    return {
        "config": name,
        "noise turns": sum(v["turns"] for v in r["noise"].values()),
        "STT on noise": sum(v["stt_calls"] for v in r["noise"].values()),
        "speech@10dB turns": r["speech_in_noise"]["turns"],
        "self-interrupt": sum(e["interrupted"] for e in r["echo"].values()),
        "STT on echo": sum(e["stt_calls"] for e in r["echo"].values()),
        "false barge-in": sum(b["interrupted"] for b in r["backchannel"].values()),
        "missed barge-in": sum(not c["interrupted"] for c in cuts),
        "stop p50 ms": percentile(stops, 50),
        "stop p95 ms": percentile(stops, 95),
        "words lost ms": max((full - b["voiced_ms"] for b in kept_bc), default=None),
    }


async def bench(quick: bool) -> dict[str, Any]:
    openai = await start_openai_fake(transcript="", reply=REPLY, chunk_delay_s=0.005)
    eleven = await start_elevenlabs_fake(speak_text=True)
    urls = {"openai": openai.base_url, "elevenlabs": eleven.base_url}
    results: dict[str, Any] = {}
    try:
        for name, env in CONFIGS.items():
            with server_process(["-m", "media_server"], {**fakes_env(urls), **env}) as srv:
                await srv.wait_ready()
                results[name] = await measure(Run(srv.base_url, openai), quick)
    finally:
        await openai.close()
        await eleven.close()
    rows = [summarize(name, r) for name, r in results.items()]
    print_table(rows, list(rows[0]))
    return {"quick": quick, "summary": rows, "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer noises, echoes and rounds")
    args = parser.parse_args()
    run_bench("listening", bench, args.quick)


if __name__ == "__main__":
    main()
