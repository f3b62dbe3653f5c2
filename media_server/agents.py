"""Agent personas: the three built-ins and custom ones from a TOML file.

The built-in prompts, ElevenLabs voice ids and reply limits are those of the
original plan (shared/original-plan.md, section 6).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from media_server.tools.config import (
    HttpToolSpec,
    McpServerSpec,
    http_tools_from,
    mcp_servers_from,
)
from media_server.tools.hours import DEFAULT_HOURS, DEFAULT_SLOT_MINUTES, check_hours

PERSONAS = ("receptionist", "sales", "callcenter", "generic")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class AgentConfigError(ValueError):
    """An agents file we cannot use; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    description: str
    prompt: str
    voice_id: str  # ElevenLabs voice id
    temperature: float = 0.7
    max_tokens: int = 150
    # How the offline scripted engine behaves for this agent.
    persona: str = "generic"
    openai_voice: str = "alloy"
    espeak_voice: str = "en-us"
    extra_voices: dict[str, str] = field(default_factory=dict)
    # When appointments and demos can be booked (tools/hours.py).
    opening_hours: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HOURS))
    slot_minutes: int = DEFAULT_SLOT_MINUTES
    # Tools beyond the persona's own: webhooks and MCP servers (tools/config.py).
    tools: tuple[HttpToolSpec, ...] = ()
    mcp: tuple[McpServerSpec, ...] = ()
    # Where transfer_call sends a phone call (E.164); "" offers no transfer.
    transfer_number: str = ""

    def voice_for(self, tts_name: str) -> str:
        """The voice this agent speaks with on a given TTS engine."""
        if tts_name in self.extra_voices:
            return self.extra_voices[tts_name]
        return {
            "elevenlabs": self.voice_id,
            "openai": self.openai_voice,
            "espeak": self.espeak_voice,
        }.get(tts_name, self.voice_id)

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "description": self.description}


BUILTIN_AGENTS: dict[str, Agent] = {
    "receptionist": Agent(
        id="receptionist",
        name="Receptionist",
        description="Friendly receptionist for appointment scheduling",
        prompt="""You are a professional and friendly receptionist for a medical clinic.

Your responsibilities:
- Greet callers warmly
- Help schedule appointments
- Answer basic questions about clinic hours and services
- Collect patient information (name, phone, reason for visit)
- Be concise and clear in your responses

Guidelines:
- Keep responses under 2-3 sentences for natural conversation flow
- Be polite and professional
- If you don't know something, offer to transfer or take a message
- Confirm important information back to the caller""",
        voice_id="EXAVITQu4vr4xnSDxMaL",
        persona="receptionist",
        openai_voice="nova",
        espeak_voice="en-us+f3",
    ),
    "sales": Agent(
        id="sales",
        name="Sales Agent",
        description="Professional sales agent for product inquiries",
        prompt="""You are an experienced sales representative for a software company.

Your role:
- Understand customer needs
- Present product features and benefits
- Answer questions about pricing and plans
- Build rapport and trust
- Guide customers toward a purchase decision

Guidelines:
- Be enthusiastic but not pushy
- Listen actively and ask clarifying questions
- Provide specific, relevant information
- Keep responses concise (2-3 sentences)
- Focus on value, not just features""",
        voice_id="21m00Tcm4TlvDq8ikWAM",
        persona="sales",
        openai_voice="shimmer",
        espeak_voice="en-us+f4",
    ),
    "callcenter": Agent(
        id="callcenter",
        name="Call Center Agent",
        description="Customer support for technical issues",
        prompt="""You are a skilled customer support agent for a tech company.

Your mission:
- Help customers troubleshoot technical issues
- Provide step-by-step guidance
- Document issues and solutions
- Escalate complex problems when needed
- Ensure customer satisfaction

Guidelines:
- Be patient and empathetic
- Use simple, non-technical language
- Confirm understanding before moving forward
- Keep responses brief and actionable
- Stay calm under pressure""",
        voice_id="pNInz6obpgDQGcFmaJgB",
        persona="callcenter",
        openai_voice="onyx",
        espeak_voice="en-us+m3",
    ),
}

_E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")
_REQUIRED = ("name", "description", "prompt")
_ALLOWED = {f.name for f in fields(Agent)} - {"id", "extra_voices"} | {"voices"}


def _acting(agent_id: str, table: dict[str, Any], where: str, env: Mapping[str, str]) -> dict:
    """The fields that say what the agent can do: hours, tools, MCP servers."""
    at = f"{where}: agents.{agent_id}"
    kwargs: dict[str, Any] = {}
    try:
        if "opening_hours" in table:
            kwargs["opening_hours"] = check_hours(table["opening_hours"], f"{at}.opening_hours")
        if "tools" in table:
            kwargs["tools"] = http_tools_from(table["tools"], f"{at}.tools", env)
        if "mcp" in table:
            kwargs["mcp"] = mcp_servers_from(table["mcp"], f"{at}.mcp", env)
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    if "transfer_number" in table:
        number = table["transfer_number"]
        if not isinstance(number, str) or not _E164.match(number.strip()):
            raise AgentConfigError(f"{at}.transfer_number must be a phone number like +15550100")
        kwargs["transfer_number"] = number.strip()
    if "slot_minutes" in table:
        m = table["slot_minutes"]
        if isinstance(m, bool) or not isinstance(m, int) or not 5 <= m <= 240:
            raise AgentConfigError(f"{at}.slot_minutes must be a whole number from 5 to 240")
        kwargs["slot_minutes"] = m
    return kwargs


def _agent_from_table(
    agent_id: str, table: Any, where: str, env: Mapping[str, str] | None = None
) -> Agent:
    if not _ID_RE.match(agent_id):
        raise AgentConfigError(
            f"{where}: agent id {agent_id!r} must be 1-40 lowercase letters, digits, '-' or '_'"
        )
    if not isinstance(table, dict):
        raise AgentConfigError(f"{where}: [agents.{agent_id}] must be a table")
    unknown = sorted(set(table) - _ALLOWED)
    if unknown:
        raise AgentConfigError(
            f"{where}: agents.{agent_id} has unknown field(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(_ALLOWED))})"
        )
    for key in _REQUIRED:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise AgentConfigError(f"{where}: agents.{agent_id}.{key} must be a non-empty string")
    kwargs: dict[str, Any] = {k: table[k].strip() for k in _REQUIRED}
    for key in ("voice_id", "openai_voice", "espeak_voice"):
        if key in table:
            if not isinstance(table[key], str) or not table[key].strip():
                raise AgentConfigError(f"{where}: agents.{agent_id}.{key} must be a string")
            kwargs[key] = table[key].strip()
    kwargs.setdefault("voice_id", BUILTIN_AGENTS["receptionist"].voice_id)
    if "temperature" in table:
        t = table["temperature"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= t <= 2.0:
            raise AgentConfigError(
                f"{where}: agents.{agent_id}.temperature must be a number from 0 to 2"
            )
        kwargs["temperature"] = float(t)
    if "max_tokens" in table:
        m = table["max_tokens"]
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 4096:
            raise AgentConfigError(
                f"{where}: agents.{agent_id}.max_tokens must be a whole number from 1 to 4096"
            )
        kwargs["max_tokens"] = m
    if "persona" in table:
        if table["persona"] not in PERSONAS:
            raise AgentConfigError(
                f"{where}: agents.{agent_id}.persona must be one of {', '.join(PERSONAS)}"
            )
        kwargs["persona"] = table["persona"]
    voices = table.get("voices", {})
    if not isinstance(voices, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in voices.items()
    ):
        raise AgentConfigError(
            f"{where}: agents.{agent_id}.voices must map TTS names to voice strings"
        )
    kwargs.update(_acting(agent_id, table, where, os.environ if env is None else env))
    return Agent(id=agent_id, extra_voices=dict(voices), **kwargs)


def parse_agents_toml(text: str, where: str = "agents file") -> dict[str, Agent]:
    """Agents defined in TOML text as ``[agents.<id>]`` tables."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"{where}: not valid TOML ({exc})") from exc
    table = doc.get("agents")
    if not isinstance(table, dict) or not table:
        raise AgentConfigError(f"{where}: needs at least one [agents.<id>] table")
    extra = set(doc) - {"agents"}
    if extra:
        raise AgentConfigError(f"{where}: unknown top-level key(s) {', '.join(sorted(extra))}")
    return {aid: _agent_from_table(aid, t, where) for aid, t in table.items()}


def load_agents(agents_file: Path | None = None) -> dict[str, Agent]:
    """Built-ins, plus (and overridden by) the agents in ``agents_file``."""
    agents = dict(BUILTIN_AGENTS)
    if agents_file is not None:
        try:
            text = agents_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AgentConfigError(f"--agents-file {agents_file}: cannot read ({exc})") from exc
        agents.update(parse_agents_toml(text, where=str(agents_file)))
    return agents
