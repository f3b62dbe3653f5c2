"""Settings: environment, `.env` and command-line flags, validated once at start.

Precedence: flags > environment > `.env` > defaults. A bad value raises
``ConfigError`` whose message is one line naming the setting, and start-up
stops with it. Secrets are kept out of ``repr`` so they never reach a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from media_server.config_checks import check_settings
from media_server.config_values import (
    ConfigError,
    chain_of,
    database_url,
    flag,
    float_in_range,
    int_in_range,
    ip_list,
    network_list,
    one_of,
    origin_list,
    phone_number_map,
    read_dotenv,
    redis_url,
    secret,
    stun_url_list,
    turn_url_list,
    url,
)

STT_CHOICES = ("auto", "openai", "openai-realtime", "whisper", "pocketsphinx")
TURN_DETECTORS = ("auto", "silence", "lexical")
VAD_PROVIDERS = ("silero", "webrtcvad")
WHISPER_BACKENDS = ("numpy", "ctranslate2")
LLM_CHOICES = ("auto", "openai", "scripted")
TTS_CHOICES = ("auto", "elevenlabs", "openai", "piper", "espeak")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    agents_file: Path | None = None
    log_level: str = "INFO"

    # Engines in fallback order ("auto" alone: the usual chain for the keys set).
    stt_provider: tuple[str, ...] = ("auto",)
    llm_provider: tuple[str, ...] = ("auto",)
    tts_provider: tuple[str, ...] = ("auto",)
    # How long an engine that failed (a rejected key, a deadline) is skipped.
    provider_cooldown_s: float = 60.0
    # Turns the embedded Whisper recognizer decodes at once, one core each.
    whisper_workers: int = 1
    # How Whisper runs: "numpy" (no other native code) or "ctranslate2" (the
    # optional extra: about half the CPU; its wheel links Intel oneMKL).
    whisper_backend: str = "numpy"

    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    openai_model: str = "gpt-4o-mini"
    openai_stt_model: str = "whisper-1"
    # STT_PROVIDER=openai-realtime: streamed while spoken (its fallback is OPENAI_STT_MODEL).
    openai_realtime_stt_model: str = "gpt-4o-mini-transcribe"
    openai_tts_model: str = "gpt-4o-mini-tts"
    stt_language: str = ""
    elevenlabs_api_key: str = field(default="", repr=False)
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_flash_v2_5"
    elevenlabs_output_format: str = "mp3_44100_128"

    # WebRTC. Empty ICE_HOST_ADDRESSES = let aioice pick the machine's
    # interfaces (it never offers 127.0.0.1, see AIORTC-NOTES.md).
    ice_host_addresses: tuple[str, ...] = ()
    ice_servers: tuple[str, ...] = ()  # stun: URLs only; TURN has its own settings
    # TURN (README "Deployment"): with TURN_SECRET each call gets credentials
    # minted the TURN REST way (coturn's use-auth-secret), valid TURN_TTL_S;
    # else the static TURN_USERNAME / TURN_PASSWORD.
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_s: float = 86400.0
    turn_username: str = ""
    turn_password: str = field(default="", repr=False)
    # "relay" makes the page and the server use TURN relays only.
    ice_transport_policy: str = "all"

    # Turn-taking (DESIGN.md section 2). When a turn ends is TURN_DETECTOR's
    # call: "lexical" reads the transcript at each pause (a finished sentence
    # ends after VAD_SILENCE_MS, an unfinished one waits up to
    # TURN_MAX_WAIT_MS, words it cannot read TURN_SILENCE_MS); "silence"
    # always waits TURN_SILENCE_MS. Each wait is at least the one before it
    # (VAD_SILENCE_MS=700 alone makes every wait at least 700 ms).
    turn_detector: str = "auto"
    # Who hears speech: the Silero neural model (voices, not noise) or
    # webrtcvad (VAD_AGGRESSIVENESS). VAD_THRESHOLD is Silero's.
    vad_provider: str = "silero"
    vad_threshold: float = 0.5
    vad_aggressiveness: int = 2
    vad_silence_ms: int = 200
    turn_silence_ms: int = 500
    turn_max_wait_ms: int = 1800
    # Speculative transcriptions of a turn while it is spoken (batch cloud
    # STT only; each one is a billed request).
    turn_max_speculative: int = 3
    # "on": the LLM starts on such a transcript at the pause, before the turn
    # ends (preemptive.py); its tokens are thrown away if the person goes on.
    # With "silence" too, pauses are then transcribed (TURN_MAX_SPECULATIVE).
    preemptive_reply: str = "on"
    vad_preroll_ms: int = 300
    vad_min_speech_ms: int = 250
    vad_max_utterance_s: float = 30.0
    barge_in_min_ms: int = 200  # speech over the agent that holds its audio
    # Speech over the agent that makes it an interruption; a hold released
    # short of it ("mm-hmm", a cough) lets the agent go on where it stopped.
    barge_in_confirm_ms: int = 800
    # The server's echo guard: "aec" takes the agent's own voice out of the
    # microphone's audio (WebRTC AEC3 against what was played) before the
    # VAD and STT hear it; "off" hears the microphone as it comes.
    echo_guard: str = "aec"

    # Limits and deadlines.
    max_sessions: int = 20
    workers: int = 1  # processes serving the port (SO_REUSEPORT)
    # On SIGTERM, live calls go on this long while no new ones are taken (0: end them at once).
    drain_timeout_s: float = 300.0
    connect_timeout_s: float = 15.0
    idle_timeout_s: float = 300.0
    max_session_s: float = 3600.0
    history_max_messages: int = 20
    stt_timeout_s: float = 15.0
    llm_timeout_s: float = 15.0  # to the first token
    tts_timeout_s: float = 15.0  # to the first audio byte
    # A page that has pinged once and then goes quiet this long is gone; aiortc
    # itself notices a vanished peer only at consent expiry (~30 s).
    ping_timeout_s: float = 15.0
    # Consecutive turns a stage may fail (after its retry) before the session
    # ends with provider_unavailable; success resets the count.
    provider_error_limit: int = 3

    # Access (README "Security"). Empty ALLOWED_ORIGINS = same origin only.
    allowed_origins: tuple[str, ...] = ()
    rate_limit_per_minute: int = 60  # offers per client IP; 0 = no limit
    auth_secret: str = field(default="", repr=False)
    # Shared tokens, rate limits and live-call registry for every worker and host.
    redis_url: str = field(default="", repr=False)
    # Bearer token for GET /metrics; unset with AUTH_SECRET set: loopback only.
    metrics_token: str = field(default="", repr=False)
    token_ttl_s: float = 300.0
    # Reverse proxies whose X-Forwarded-For / Forwarded name the client
    # (addresses or CIDRs); from anyone else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    log_format: str = "text"

    # Phone calls (README "Phone calls"); Twilio signs over PUBLIC_URL.
    public_url: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    twilio_allow_unsigned: bool = False  # local tries only: no signature check
    # Twilio's REST API (transfer_call redirects the call there); tests point it at a fake.
    twilio_api_base: str = "https://api.twilio.com"
    phone_numbers: tuple[tuple[str, str], ...] = ()  # called number -> agent id
    phone_agent: str = "receptionist"  # neither ?agent= nor a mapped number
    # The agents' database: bookings, tickets, demos, conversation records
    # (README "Agents that act"). A relative path is from the working directory.
    database_url: str = field(default="sqlite:///data/voice-agent.db", repr=False)

    @property
    def openai_configured(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def elevenlabs_configured(self) -> bool:
        return bool(self.elevenlabs_api_key)

    @property
    def auth_required(self) -> bool:
        return bool(self.auth_secret)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value set: what log redaction must never let through."""
        values = (
            self.openai_api_key,
            self.elevenlabs_api_key,
            self.auth_secret,
            self.turn_secret,
            self.turn_password,
            self.twilio_auth_token,
        )
        return tuple(v for v in values if v)


# Setting name (env var, upper case) -> field. Host and port come only from
# flags: zsh exports HOST as the machine's name, which must not pick our bind.
_FLAG_ONLY = frozenset({"host", "port"})
ENV_NAMES: dict[str, str] = {f.name.upper(): f.name for f in fields(Settings)}


_INT_RANGES = {
    "port": (0, 65535),
    "vad_aggressiveness": (0, 3),
    "vad_silence_ms": (60, 5000),
    "turn_silence_ms": (60, 10000),
    "turn_max_wait_ms": (60, 20000),
    "turn_max_speculative": (0, 20),
    "vad_preroll_ms": (0, 2000),
    "vad_min_speech_ms": (0, 5000),
    "barge_in_min_ms": (0, 5000),
    "barge_in_confirm_ms": (0, 10000),
    "max_sessions": (1, 10000),
    "workers": (1, 64),
    "whisper_workers": (1, 16),
    "history_max_messages": (2, 1000),
    "provider_error_limit": (1, 1000),
    "rate_limit_per_minute": (0, 100000),
}
_FLOAT_RANGES = {
    "vad_threshold": (0.05, 0.95),
    "vad_max_utterance_s": (1.0, 600.0),
    "connect_timeout_s": (1.0, 600.0),
    "idle_timeout_s": (1.0, 86400.0),
    "max_session_s": (1.0, 86400.0),
    "ping_timeout_s": (1.0, 600.0),
    "token_ttl_s": (5.0, 86400.0),
    "turn_ttl_s": (60.0, 7 * 86400.0),
    "stt_timeout_s": (1.0, 300.0),
    "llm_timeout_s": (1.0, 300.0),
    "tts_timeout_s": (1.0, 300.0),
    "provider_cooldown_s": (1.0, 86400.0),
    "drain_timeout_s": (0.0, 86400.0),
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
ICE_TRANSPORT_POLICIES = ("all", "relay")
ECHO_GUARDS = ("aec", "off")


def _convert(attr: str, name: str, raw: str) -> Any:
    if attr in _INT_RANGES:
        return int_in_range(name, raw, *_INT_RANGES[attr])
    if attr in _FLOAT_RANGES:
        return float_in_range(name, raw, *_FLOAT_RANGES[attr])
    if attr == "stt_provider":
        return chain_of(name, raw, STT_CHOICES)
    if attr == "llm_provider":
        return chain_of(name, raw, LLM_CHOICES)
    if attr == "tts_provider":
        return chain_of(name, raw, TTS_CHOICES)
    if attr == "whisper_backend":
        return one_of(name, raw, WHISPER_BACKENDS)
    if attr == "preemptive_reply":
        return one_of(name, raw, ("on", "off"))
    if attr == "vad_provider":
        return one_of(name, raw, VAD_PROVIDERS)
    if attr == "echo_guard":
        return one_of(name, raw, ECHO_GUARDS)
    if attr == "turn_detector":
        if raw.strip().lower() in ("smart-turn", "smart_turn", "smartturn"):
            raise ConfigError(
                f"{name}=smart-turn: not available. The Smart Turn audio model scored "
                "at chance on this project's test speech and takes 75-180 ms a pause "
                "on 2 cores; use lexical (the default) or silence"
            )
        return one_of(name, raw, TURN_DETECTORS)
    if attr in ("openai_base_url", "elevenlabs_base_url", "public_url", "twilio_api_base"):
        return url(name, raw)
    if attr == "ice_host_addresses":
        return ip_list(name, raw)
    if attr == "ice_servers":
        return stun_url_list(name, raw)
    if attr == "turn_urls":
        return turn_url_list(name, raw)
    if attr == "ice_transport_policy":
        return one_of(name, raw, ICE_TRANSPORT_POLICIES)
    if attr == "trusted_proxies":
        return network_list(name, raw)
    if attr == "log_format":
        return one_of(name, raw, LOG_FORMATS)
    if attr == "allowed_origins":
        return origin_list(name, raw)
    if attr == "redis_url":
        return redis_url(name, raw)
    if attr in ("auth_secret", "metrics_token", "twilio_auth_token"):
        return secret(name, raw)
    if attr in ("twilio_allow_unsigned", "phone_numbers"):
        return flag(name, raw) if attr == "twilio_allow_unsigned" else phone_number_map(name, raw)
    if attr == "database_url":
        return database_url(name, raw)
    if attr == "agents_file":
        return Path(raw.strip()) if raw.strip() else None
    if attr == "log_level":
        return one_of(name, raw.upper(), tuple(v.lower() for v in _LOG_LEVELS)).upper()
    return raw.strip()


def load_settings(
    overrides: Mapping[str, str | None] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = Path(".env"),
) -> Settings:
    """Build validated settings. ``overrides`` are flags by setting name."""
    merged: dict[str, str] = {}
    if dotenv_path is not None:
        merged.update(read_dotenv(dotenv_path))
    merged.update(os.environ if environ is None else environ)
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key.upper()] = value
    for key, value in (overrides or {}).items():
        if value is not None and key.lower() in _FLAG_ONLY:
            merged[f"--{key.lower()}"] = value
    values: dict[str, Any] = {}
    for name, attr in ENV_NAMES.items():
        if attr in _FLAG_ONLY:
            name = f"--{attr}"
        if name in merged:
            values[attr] = _convert(attr, name, merged[name])
    settings = Settings(**values)
    check_settings(settings)
    if settings.agents_file is not None and not settings.agents_file.is_file():
        raise ConfigError(f"AGENTS_FILE={settings.agents_file}: no such file")
    return settings
