from pathlib import Path

import pytest

from media_server.agents import BUILTIN_AGENTS, AgentConfigError, load_agents, parse_agents_toml


def test_builtins_follow_the_original_plan():
    assert set(BUILTIN_AGENTS) == {"receptionist", "sales", "callcenter"}
    r = BUILTIN_AGENTS["receptionist"]
    assert r.voice_id == "EXAVITQu4vr4xnSDxMaL" and "medical clinic" in r.prompt
    assert BUILTIN_AGENTS["sales"].voice_id == "21m00Tcm4TlvDq8ikWAM"
    assert BUILTIN_AGENTS["callcenter"].voice_id == "pNInz6obpgDQGcFmaJgB"
    assert all(a.max_tokens == 150 and a.temperature == 0.7 for a in BUILTIN_AGENTS.values())
    assert r.voice_for("elevenlabs") == r.voice_id
    assert r.voice_for("espeak").startswith("en")


def test_custom_agents_file_adds_and_overrides(tmp_path: Path):
    path = tmp_path / "agents.toml"
    path.write_text(
        """
[agents.dentist]
name = "Dentist"
description = "Books cleanings"
prompt = "You are a dental receptionist."
persona = "receptionist"
max_tokens = 80
temperature = 0.3
voices = { espeak = "en-gb" }

[agents.sales]
name = "Sales (custom)"
description = "Overrides the built-in"
prompt = "Sell."
"""
    )
    agents = load_agents(path)
    assert set(agents) == {"receptionist", "sales", "callcenter", "dentist"}
    d = agents["dentist"]
    assert (d.max_tokens, d.temperature, d.persona) == (80, 0.3, "receptionist")
    assert d.voice_for("espeak") == "en-gb"
    assert agents["sales"].name == "Sales (custom)"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not toml [", "not valid TOML"),
        ("[other]\nx=1", "at least one"),
        ('[agents.x]\nname="X"\ndescription="d"', "prompt"),
        ('[agents.x]\nname="X"\ndescription="d"\nprompt="p"\nmax_tokens=0', "max_tokens"),
        ('[agents.x]\nname="X"\ndescription="d"\nprompt="p"\ntemperature="hot"', "temperature"),
        ('[agents.x]\nname="X"\ndescription="d"\nprompt="p"\npersona="pirate"', "persona"),
        ('[agents.x]\nname="X"\ndescription="d"\nprompt="p"\nvoice="a"', "unknown field"),
        ('[agents."Bad Id"]\nname="X"\ndescription="d"\nprompt="p"', "agent id"),
        ('[agents.x]\nname="X"\ndescription="d"\nprompt="p"\ntransfer_number="5550100"', "like"),
        ('[agents.x]\nname="X"\ndescription="d"\nprompt="p"\ntransfer_number=1', "transfer"),
    ],
)
def test_bad_agent_files_name_the_problem(text, fragment):
    with pytest.raises(AgentConfigError, match=fragment):
        parse_agents_toml(text, where="agents.toml")


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(AgentConfigError, match="cannot read"):
        load_agents(tmp_path / "nope.toml")


def test_a_transfer_number_is_read_from_the_agents_file():
    text = '[agents.x]\nname="X"\ndescription="d"\nprompt="p"\ntransfer_number=" +15550100 "'
    assert parse_agents_toml(text)["x"].transfer_number == "+15550100"
    assert BUILTIN_AGENTS["receptionist"].transfer_number == ""  # no transfer unless set
