"""Checks across settings, run once after each value has been read and
validated on its own (config_values.py)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from media_server.config_values import ConfigError

if TYPE_CHECKING:
    from media_server.config import Settings


def check_settings(s: Settings) -> None:
    """What no single value can show: engines without their keys, TURN
    credentials without servers, and the like."""
    needs = {
        "openai": ("OPENAI_API_KEY", s.openai_configured),
        "openai-realtime": ("OPENAI_API_KEY", s.openai_configured),
    }
    needs_tts = {**needs, "elevenlabs": ("ELEVENLABS_API_KEY", s.elevenlabs_configured)}
    for name, chain, keys in (
        ("STT_PROVIDER", s.stt_provider, needs),
        ("LLM_PROVIDER", s.llm_provider, needs),
        ("TTS_PROVIDER", s.tts_provider, needs_tts),
    ):
        for engine in chain:
            if engine in keys and not keys[engine][1]:
                raise ConfigError(f"{name}={engine} needs {keys[engine][0]}")
    if "piper" in s.tts_provider:
        from media_server.providers.piper_tts import missing_extra

        if (why := missing_extra()) is not None:
            raise ConfigError(f"TTS_PROVIDER=piper: {why}")
    if not s.elevenlabs_base_url:
        raise ConfigError("ELEVENLABS_BASE_URL: must not be empty")
    if not re.fullmatch(r"(mp3_\d+_\d+|pcm_\d+)", s.elevenlabs_output_format):
        raise ConfigError(
            f"ELEVENLABS_OUTPUT_FORMAT={s.elevenlabs_output_format!r}: "
            "expected mp3_<rate>_<kbps> (e.g. mp3_44100_128) or pcm_<rate>"
        )
    check_turn(s)


def check_turn(s: Settings) -> None:
    static = bool(s.turn_username or s.turn_password)
    if s.turn_urls and not (s.turn_secret or static):
        raise ConfigError("TURN_URLS needs TURN_SECRET, or TURN_USERNAME and TURN_PASSWORD")
    if s.turn_secret and static:
        raise ConfigError("TURN_SECRET and TURN_USERNAME/TURN_PASSWORD: set one, not both")
    if static and not (s.turn_username and s.turn_password):
        raise ConfigError("TURN_USERNAME and TURN_PASSWORD go together: set both")
    if (s.turn_secret or static) and not s.turn_urls:
        raise ConfigError("TURN credentials are set but TURN_URLS is empty")
    if s.ice_transport_policy == "relay" and not s.turn_urls:
        raise ConfigError("ICE_TRANSPORT_POLICY=relay needs TURN_URLS (no relay, no connection)")
    if s.turn_secret and s.turn_ttl_s < s.max_session_s:
        # coturn checks the credential on every allocation refresh: one that
        # expires mid-call drops the relay, and the call with it.
        raise ConfigError(
            f"TURN_TTL_S={s.turn_ttl_s:g}: shorter than MAX_SESSION_S={s.max_session_s:g}; "
            "a call would lose its relay when its credentials expire"
        )
