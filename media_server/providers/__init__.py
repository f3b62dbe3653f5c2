"""Provider selection: one place turns settings into the three engines.

``auto`` picks the cloud engine when its key is set and the embedded one
otherwise, so a fresh machine with no keys and no network still talks.
Imports are lazy: the embedded engines load native libraries, the cloud ones
the SDKs, and a process needs only the ones it uses.
"""

from __future__ import annotations

from typing import TypeVar

from media_server.config import Settings
from media_server.providers.base import LanguageModel, Providers, SpeechToText, TextToSpeech
from media_server.providers.fallback import EngineChain
from media_server.types import Stage

E = TypeVar("E")


def resolve_names(settings: Settings) -> tuple[tuple[str, ...], ...]:
    """The engine chains (fallback order) for these settings: ``auto`` is
    every cloud engine whose key is set, then the embedded one, so a rejected
    key or a dead service falls back and a machine with no keys still talks."""
    openai = ("openai",) if settings.openai_configured else ()
    elevenlabs = ("elevenlabs",) if settings.elevenlabs_configured else ()
    auto = {
        "stt": (*openai, "whisper", "pocketsphinx"),
        "llm": (*openai, "scripted"),
        "tts": (*elevenlabs, *openai, "espeak"),
    }
    return tuple(
        auto[stage] if chain == ("auto",) else chain
        for stage, chain in (
            ("stt", settings.stt_provider),
            ("llm", settings.llm_provider),
            ("tts", settings.tts_provider),
        )
    )


def _build_stt(name: str, s: Settings) -> SpeechToText:
    if name in ("openai", "openai-realtime"):
        from media_server.providers.openai_stt import OpenAISTT

        batch = OpenAISTT(
            api_key=s.openai_api_key,
            base_url=s.openai_base_url or None,
            model=s.openai_stt_model,
            language=s.stt_language or None,
            min_duration_s=s.vad_min_speech_ms / 1000,
        )
        if name == "openai":
            return batch
        from media_server.providers.openai_realtime_stt import OpenAIRealtimeSTT

        return OpenAIRealtimeSTT(
            api_key=s.openai_api_key,
            base_url=s.openai_base_url or None,
            model=s.openai_realtime_stt_model,
            batch=batch,
            language=s.stt_language or None,
        )
    if name == "whisper":
        from media_server.providers.whisper_stt import WhisperSTT

        return WhisperSTT(workers=s.whisper_workers, backend=s.whisper_backend)
    from media_server.providers.pocketsphinx_stt import PocketsphinxSTT

    return PocketsphinxSTT()


def _build_llm(name: str, s: Settings) -> LanguageModel:
    if name == "openai":
        from media_server.providers.openai_llm import OpenAILLM

        return OpenAILLM(
            api_key=s.openai_api_key, base_url=s.openai_base_url or None, model=s.openai_model
        )
    from media_server.providers.scripted_llm import ScriptedLLM

    return ScriptedLLM()


def _build_tts(name: str, s: Settings) -> TextToSpeech:
    if name == "elevenlabs":
        from media_server.providers.elevenlabs_tts import ElevenLabsTTS

        return ElevenLabsTTS(
            api_key=s.elevenlabs_api_key,
            base_url=s.elevenlabs_base_url,
            model=s.elevenlabs_model,
            output_format=s.elevenlabs_output_format,
        )
    if name == "openai":
        from media_server.providers.openai_tts import OpenAITTS

        return OpenAITTS(
            api_key=s.openai_api_key,
            base_url=s.openai_base_url or None,
            model=s.openai_tts_model,
        )
    if name == "piper":
        from media_server.providers.piper_tts import PiperTTS

        return PiperTTS()
    from media_server.providers.espeak_tts import EspeakTTS

    return EspeakTTS()


def _chain(stage: Stage, engines: list[E], settings: Settings) -> E:
    """One engine as itself; several as a fallback chain that stands in for them."""
    if len(engines) == 1:
        return engines[0]
    return EngineChain(stage, engines, cooldown_s=settings.provider_cooldown_s)  # type: ignore[return-value]


def build_providers(settings: Settings) -> Providers:
    stt, llm, tts = resolve_names(settings)
    return Providers(
        stt=_chain("stt", [_build_stt(n, settings) for n in stt], settings),
        llm=_chain("llm", [_build_llm(n, settings) for n in llm], settings),
        tts=_chain("tts", [_build_tts(n, settings) for n in tts], settings),
    )
