"""Every real engine class is its stage's protocol, capabilities included.

The engines are built but never asked anything: the cloud ones get a dummy
key and a loopback address nothing listens on, and no test here makes a
request. What each engine's capabilities promise about its audio is checked
against real chunks in its own test_<engine>.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from media_server.providers.base import (
    LanguageModel,
    SpeechToText,
    STTCapabilities,
    TextToSpeech,
    TTSCapabilities,
)
from media_server.providers.elevenlabs_tts import ElevenLabsTTS
from media_server.providers.espeak_tts import EspeakTTS
from media_server.providers.openai_llm import OpenAILLM
from media_server.providers.openai_stt import OpenAISTT
from media_server.providers.openai_tts import OpenAITTS
from media_server.providers.pocketsphinx_stt import PocketsphinxSTT
from media_server.providers.scripted_llm import ScriptedLLM
from media_server.providers.whisper_stt import WhisperSTT

NOWHERE = "http://127.0.0.1:9"  # discard port: never contacted here
KEY = "sk-dummy-0123456789abcdef"

STT_ENGINES: dict[str, Callable[[], Any]] = {
    "openai": lambda: OpenAISTT(api_key=KEY, base_url=NOWHERE),
    "pocketsphinx": lambda: PocketsphinxSTT(),
    "whisper": lambda: WhisperSTT(),
}
LLM_ENGINES: dict[str, Callable[[], Any]] = {
    "openai": lambda: OpenAILLM(api_key=KEY, base_url=NOWHERE),
    "scripted": lambda: ScriptedLLM(),
}
# engine id -> (factory, the capabilities it must declare)
TTS_ENGINES: dict[str, tuple[Callable[[], Any], TTSCapabilities]] = {
    "openai-mp3": (
        lambda: OpenAITTS(api_key=KEY, base_url=NOWHERE),
        TTSCapabilities(streaming=True, encoding="mp3", sample_rate=0),
    ),
    "openai-pcm": (
        lambda: OpenAITTS(api_key=KEY, base_url=NOWHERE, response_format="pcm"),
        TTSCapabilities(streaming=True, encoding="pcm", sample_rate=24000),
    ),
    "elevenlabs-mp3": (
        lambda: ElevenLabsTTS(api_key=KEY, base_url=NOWHERE),
        TTSCapabilities(streaming=True, encoding="mp3", sample_rate=0),
    ),
    "elevenlabs-pcm_16000": (
        lambda: ElevenLabsTTS(api_key=KEY, base_url=NOWHERE, output_format="pcm_16000"),
        TTSCapabilities(streaming=True, encoding="pcm", sample_rate=16000),
    ),
    "elevenlabs-pcm_44100": (
        lambda: ElevenLabsTTS(api_key=KEY, base_url=NOWHERE, output_format="pcm_44100"),
        TTSCapabilities(streaming=True, encoding="pcm", sample_rate=44100),
    ),
    "espeak": (
        lambda: EspeakTTS(),
        TTSCapabilities(streaming=True, encoding="pcm", sample_rate=22050),
    ),
}


@pytest.fixture
async def build() -> AsyncIterator[Callable[[Callable[[], Any]], Any]]:
    made: list[Any] = []

    def make(factory: Callable[[], Any]) -> Any:
        made.append(engine := factory())
        return engine

    yield make
    for engine in made:
        await engine.close()


@pytest.mark.parametrize("factory", STT_ENGINES.values(), ids=STT_ENGINES.keys())
async def test_stt_engines_are_speech_to_text(build, factory) -> None:
    stt = build(factory)
    assert isinstance(stt, SpeechToText)
    assert type(stt.capabilities) is STTCapabilities
    if not stt.capabilities.streaming:
        assert stt.open_stream() is None  # the turn transcribes the whole utterance


def test_stt_capabilities_are_truthful() -> None:
    assert OpenAISTT.capabilities == STTCapabilities(streaming=False)
    assert PocketsphinxSTT.capabilities == STTCapabilities(streaming=True)


@pytest.mark.parametrize("factory", LLM_ENGINES.values(), ids=LLM_ENGINES.keys())
async def test_llm_engines_are_language_models(build, factory) -> None:
    assert isinstance(build(factory), LanguageModel)


async def test_scripted_warm_up_is_a_no_op() -> None:
    llm = ScriptedLLM()
    assert await llm.warm_up() is None
    await llm.close()


@pytest.mark.parametrize(("factory", "expected"), TTS_ENGINES.values(), ids=TTS_ENGINES.keys())
async def test_tts_engines_are_text_to_speech(build, factory, expected) -> None:
    tts = build(factory)
    assert isinstance(tts, TextToSpeech)
    assert type(tts.capabilities) is TTSCapabilities
    assert tts.capabilities == expected
    # MP3 carries its own rate; PCM must say what it is.
    assert (tts.capabilities.encoding == "pcm") == (tts.capabilities.sample_rate > 0)


def test_capabilities_are_frozen_values() -> None:
    caps = TTSCapabilities(streaming=True, encoding="pcm", sample_rate=16000)
    with pytest.raises(AttributeError):
        caps.sample_rate = 8000  # type: ignore[misc]
    assert not hasattr(caps, "__dict__")  # slotted
    assert caps == TTSCapabilities(True, "pcm", 16000)
    assert hash(STTCapabilities(streaming=True)) == hash(STTCapabilities(True))
