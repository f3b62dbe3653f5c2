"""Provider selection: one place turns settings into the three engines.

``auto`` picks the cloud engine when its key is set and the embedded one
otherwise, so a fresh machine with no keys and no network still talks.
Imports are lazy: the embedded engines load native libraries, the cloud ones
the SDKs, and a process needs only the ones it uses.
"""

from __future__ import annotations

from media_server.config import Settings
from media_server.providers.base import LanguageModel, Providers, SpeechToText, TextToSpeech


def resolve_names(settings: Settings) -> tuple[str, str, str]:
    """The engine names ``auto`` resolves to for these settings."""
    stt = settings.stt_provider
    if stt == "auto":
        stt = "openai" if settings.openai_configured else "pocketsphinx"
    llm = settings.llm_provider
    if llm == "auto":
        llm = "openai" if settings.openai_configured else "scripted"
    tts = settings.tts_provider
    if tts == "auto":
        if settings.elevenlabs_configured:
            tts = "elevenlabs"
        elif settings.openai_configured:
            tts = "openai"
        else:
            tts = "espeak"
    return stt, llm, tts


def _build_stt(name: str, s: Settings) -> SpeechToText:
    if name == "openai":
        from media_server.providers.openai_stt import OpenAISTT

        return OpenAISTT(
            api_key=s.openai_api_key,
            base_url=s.openai_base_url or None,
            model=s.openai_stt_model,
            language=s.stt_language or None,
            min_duration_s=s.vad_min_speech_ms / 1000,
        )
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
    from media_server.providers.espeak_tts import EspeakTTS

    return EspeakTTS()


def build_providers(settings: Settings) -> Providers:
    stt, llm, tts = resolve_names(settings)
    return Providers(
        stt=_build_stt(stt, settings), llm=_build_llm(llm, settings), tts=_build_tts(tts, settings)
    )
