"""A phone call's own tool box: the agent's tools plus the phone's, built
without touching the agent's box (shared by all its calls), and the Twilio
transfer's TwiML."""

from __future__ import annotations

import json

import pytest

from media_server.telephony.line import TransferFailed
from media_server.telephony.twilio_rest import dial, dial_twiml
from media_server.tools.registry import Tool, Toolbox, ToolResult
from media_server.types import ToolCall

NO_ARGS = {"type": "object", "properties": {}}


def tool(name: str, *, heard_first: bool = False) -> Tool:
    async def run(arguments: dict) -> ToolResult:
        return ToolResult(True, json.dumps({"tool": name}), name)

    return Tool(name, f"the {name} tool", NO_ARGS, run, heard_first=heard_first)


def names(box: Toolbox) -> list[str]:
    return [spec["function"]["name"] for spec in box.specs()]


async def test_with_tools_adds_to_a_copy_and_reads_the_agents_box_live():
    agents = Toolbox([tool("book")])
    call = agents.with_tools(tool("end_call"), tool("transfer_call", heard_first=True))
    assert names(agents) == ["book"] and "end_call" not in agents
    assert names(call) == ["book", "end_call", "transfer_call"] and len(call) == 3
    agents.add(tool("mcp_lookup"))  # an MCP server's tools arrive after the call began
    assert "mcp_lookup" in call and len(call) == 4
    result = await call.call(ToolCall("c1", "mcp_lookup", "{}"))
    assert json.loads(result.content) == {"tool": "mcp_lookup"}
    assert (await call.call(ToolCall("c2", "end_call", "{}"))).ok


def test_only_transfer_waits_for_the_words_before_it():
    call = Toolbox([tool("book")]).with_tools(tool("transfer_call", heard_first=True))
    assert call.wants_heard([ToolCall("c1", "book", "{}"), ToolCall("c2", "transfer_call", "")])
    assert not call.wants_heard([ToolCall("c1", "book", "{}"), ToolCall("c3", "nope", "")])


async def test_a_call_tool_hides_an_agent_tool_of_the_same_name():
    # An MCP server offering its own "end_call" must not stop phone calls.
    agents = Toolbox([tool("end_call"), tool("book")])
    call = agents.with_tools(tool("end_call", heard_first=True))
    assert sorted(names(call)) == ["book", "end_call"]
    assert call.wants_heard([ToolCall("c1", "end_call", "{}")])
    assert not agents.wants_heard([ToolCall("c1", "end_call", "{}")])


def test_the_transfer_twiml_escapes_the_number():
    assert dial_twiml("+15550100") == "<Response><Dial>+15550100</Dial></Response>"
    assert dial_twiml("<x>&") == "<Response><Dial>&lt;x&gt;&amp;</Dial></Response>"


async def test_a_transfer_without_what_twilio_needs_fails_with_a_reason():
    # Refused before any request: the reason is what the model tells the caller.
    with pytest.raises(TransferFailed, match="TWILIO_AUTH_TOKEN"):
        await dial("http://127.0.0.1:9", "", "AC" + "0" * 32, "CA" + "1" * 32, "+15550100")
    with pytest.raises(TransferFailed, match="which Twilio call"):
        await dial("http://127.0.0.1:9", "token", "", "CA/../x", "+15550100")
