from pathlib import Path

import pytest

from media_server.config import ConfigError, load_settings, read_dotenv
from media_server.providers import resolve_names


def settings(env=None, flags=None, dotenv=None):
    return load_settings(flags or {}, environ=env or {}, dotenv_path=dotenv)


def test_defaults_are_offline_and_loopback():
    s = settings()
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.ice_servers == ()  # never a public STUN server by surprise
    assert s.vad_silence_ms == 200 and s.vad_preroll_ms == 300 and s.barge_in_min_ms == 200
    assert (s.turn_detector, s.turn_silence_ms, s.turn_max_wait_ms) == ("auto", 500, 1800)
    assert resolve_names(s) == (("whisper", "pocketsphinx"), ("scripted",), ("espeak",))


def test_auto_chains_every_keyed_cloud_engine_before_the_embedded_one():
    s = settings({"OPENAI_API_KEY": "sk-test"})
    assert resolve_names(s) == (
        ("openai", "whisper", "pocketsphinx"),
        ("openai", "scripted"),
        ("openai", "espeak"),
    )
    s = settings({"OPENAI_API_KEY": "sk-test", "ELEVENLABS_API_KEY": "el-test"})
    assert resolve_names(s)[2] == ("elevenlabs", "openai", "espeak")
    s = settings({"ELEVENLABS_API_KEY": "el", "STT_PROVIDER": "pocketsphinx"})
    assert resolve_names(s) == (("pocketsphinx",), ("scripted",), ("elevenlabs", "espeak"))


def test_provider_settings_are_chains_in_fallback_order():
    s = settings({"OPENAI_API_KEY": "sk", "TTS_PROVIDER": "OpenAI, espeak"})
    assert s.tts_provider == ("openai", "espeak")
    assert resolve_names(s)[2] == ("openai", "espeak")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("espeak,espeak", "listed twice"),
        ("auto,espeak", "auto is a chain by itself"),
        (" , ", "at least one"),
        ("espeak,festival", "must be one of"),
        ("elevenlabs,espeak", "ELEVENLABS_API_KEY"),
    ],
)
def test_a_bad_chain_says_what_is_wrong(raw, says):
    with pytest.raises(ConfigError, match=says):
        settings({"TTS_PROVIDER": raw})


def test_secrets_stay_out_of_repr():
    s = settings({"OPENAI_API_KEY": "sk-very-secret", "ELEVENLABS_API_KEY": "el-secret"})
    assert "sk-very-secret" not in repr(s) and "el-secret" not in repr(s)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"VAD_SILENCE_MS": "abc"}, "VAD_SILENCE_MS"),
        ({"VAD_SILENCE_MS": "10"}, "VAD_SILENCE_MS"),
        ({"VAD_AGGRESSIVENESS": "4"}, "VAD_AGGRESSIVENESS"),
        ({"MAX_SESSIONS": "0"}, "MAX_SESSIONS"),
        ({"STT_PROVIDER": "whisper.cpp"}, "STT_PROVIDER"),
        ({"TTS_PROVIDER": "elevenlabs"}, "ELEVENLABS_API_KEY"),
        ({"LLM_PROVIDER": "openai"}, "OPENAI_API_KEY"),
        ({"ICE_HOST_ADDRESSES": "127.0.0.1,localhost"}, "ICE_HOST_ADDRESSES"),
        ({"ICE_SERVERS": "stun.example.org"}, "ICE_SERVERS"),
        ({"OPENAI_BASE_URL": "localhost:11434"}, "OPENAI_BASE_URL"),
        ({"VAD_MAX_UTTERANCE_S": "nan"}, "VAD_MAX_UTTERANCE_S"),
        ({"ELEVENLABS_OUTPUT_FORMAT": "wav"}, "ELEVENLABS_OUTPUT_FORMAT"),
        ({"WORKERS": "0"}, "WORKERS"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"DRAIN_TIMEOUT_S": "-1"}, "DRAIN_TIMEOUT_S"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_setting(env, names):
    with pytest.raises(ConfigError) as info:
        settings(env)
    message = str(info.value)
    assert names in message and "\n" not in message


def test_precedence_flags_over_env_over_dotenv(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nexport VAD_SILENCE_MS=700\nMAX_SESSIONS='3'\nOPENAI_MODEL=llama3 # local\n"
    )
    s = settings({"MAX_SESSIONS": "4"}, dotenv=dotenv)
    assert (s.vad_silence_ms, s.max_sessions, s.openai_model) == (700, 4, "llama3")
    s = settings({"MAX_SESSIONS": "4"}, {"max_sessions": "5", "port": "9000"}, dotenv)
    assert (s.max_sessions, s.port) == (5, 9000)


def test_host_and_port_ignore_the_environment():
    # zsh exports HOST=<machine name>; it must not become our bind address.
    s = settings({"HOST": "my-laptop", "PORT": "1"})
    assert (s.host, s.port) == ("127.0.0.1", 8080)


def test_dotenv_syntax_error_names_the_line(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("OK=1\nthis is not a setting\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_dotenv(dotenv)


def test_ice_lists_parse():
    s = settings({"ICE_HOST_ADDRESSES": "127.0.0.1, ::1", "ICE_SERVERS": "stun:stun.example:3478"})
    assert s.ice_host_addresses == ("127.0.0.1", "::1")
    assert s.ice_servers == ("stun:stun.example:3478",)


def test_smart_turn_says_why_not():
    with pytest.raises(ConfigError, match="smart-turn: not available"):
        settings({"TURN_DETECTOR": "smart-turn"})
    with pytest.raises(ConfigError, match="must be one of auto, silence, lexical"):
        settings({"TURN_DETECTOR": "psychic"})


@pytest.mark.parametrize(
    ("env", "detector", "waits"),
    [
        ({}, "lexical", (200, 500, 1800)),
        ({"STT_LANGUAGE": "de"}, "lexical", (200, 500, 1800)),
        ({"STT_LANGUAGE": "ja"}, "silence", (200, 500, 1800)),  # no rules for it
        ({"TURN_DETECTOR": "silence", "TURN_SILENCE_MS": "700"}, "silence", (200, 700, 1800)),
        ({"VAD_SILENCE_MS": "700"}, "lexical", (700, 700, 1800)),  # the old meaning holds
        ({"TURN_SILENCE_MS": "900", "TURN_MAX_WAIT_MS": "400"}, "lexical", (200, 900, 900)),
    ],
)
def test_the_end_of_turn_policy_follows_the_settings(env, detector, waits):
    from media_server.listening.end_of_turn import EndOfTurn

    eot = EndOfTurn.from_settings(settings(env))
    assert eot.detector == detector
    assert (eot.min_wait_ms, eot.default_wait_ms, eot.max_wait_ms) == waits
    assert eot.longest_wait_ms == (waits[2] if detector == "lexical" else waits[1])


def test_workers_and_tokens_go_together_now_that_tokens_are_shared():
    s = settings({"WORKERS": "2", "AUTH_SECRET": "s" * 32})
    assert (s.workers, s.auth_required) == (2, True)
