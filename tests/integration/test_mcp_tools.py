"""MCP over stdio: a real MCP server process (tests/fakes/mcp_server.py, the
official SDK) whose tools an agent offers, calls (also from a turn against
the OpenAI fake), and gets back after the server dies and is restarted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from media_server.providers.base import Providers
from media_server.providers.openai_llm import OpenAILLM
from media_server.tools.config import McpServerSpec
from media_server.tools.mcp_client import McpServers
from media_server.tools.registry import Toolbox
from media_server.turn import Turn
from media_server.types import ToolCall
from tests.fakes.engines import FakeSTT, FakeTTS
from tests.fakes.openai_fake import start_openai_fake
from tests.fakes.pipeline import Playback, Sent, turn_context, wait_until
from tests.unit.test_tool_turns import AGENT, DEADLINES, answer_from_tools, calls_until_answered


@pytest.fixture
async def linked(tmp_path: Path):
    mark = tmp_path / "starts"
    spec = McpServerSpec(
        name="extras",
        command=sys.executable,
        args=("-m", "tests.fakes.mcp_server"),
        env={"MCP_FAKE_MARK": str(mark)},
        timeout_s=10.0,
    )
    box = Toolbox()
    servers = McpServers()
    link = await servers.add("receptionist", spec, box)
    yield box, link, mark
    await servers.close()


def call(name: str, **arguments) -> ToolCall:
    return ToolCall(f"c-{name}", name, json.dumps(arguments))


async def test_the_servers_tools_are_offered_and_called(linked) -> None:
    box, _, _ = linked
    names = {s["function"]["name"] for s in box.specs()}
    assert names == {"clinic_address", "add", "refuse", "crash"}
    add_spec = next(s for s in box.specs() if s["function"]["name"] == "add")
    assert add_spec["function"]["parameters"]["required"] == ["a", "b"]

    where = await box.call(call("clinic_address"))
    assert where.ok and json.loads(where.content) == {"result": "12 Harbour Street, Leith"}
    total = await box.call(call("add", a=2, b=3))
    assert total.ok and json.loads(total.content) == {"sum": 5}
    refused = await box.call(call("refuse", reason="no such patient"))
    assert not refused.ok and "no such patient" in refused.summary
    # Checked against the server's own schema before it is asked.
    bad = await box.call(call("add", a="two", b=3))
    assert not bad.ok and "bad arguments" in bad.summary


async def test_a_dead_server_is_restarted_and_unavailable_meanwhile(linked) -> None:
    box, link, mark = linked
    assert link.connections == 1

    died = await box.call(call("crash"))
    assert not died.ok
    # Down (the restart waits RESTART_PAUSES_S[0] first): not offered, and a
    # call gets an error result, not a hang.
    await wait_until(lambda: not link.available, timeout=10.0)
    assert box.specs() == ()
    meanwhile = await box.call(call("add", a=1, b=1))
    assert not meanwhile.ok and "unavailable" in meanwhile.summary
    # Then it is back.
    await wait_until(lambda: link.connections == 2, timeout=20.0)
    assert mark.read_text().count("started") == 2
    assert {s["function"]["name"] for s in box.specs()} >= {"add", "clinic_address"}
    again = await box.call(call("add", a=20, b=22))
    assert again.ok and json.loads(again.content) == {"sum": 42}


async def test_a_turn_calls_an_mcp_tool(linked) -> None:
    box, _, _ = linked
    fake = await start_openai_fake(api_key="sk-mcp-test")
    llm = OpenAILLM(api_key="sk-mcp-test", base_url=fake.base_url)
    try:
        fake.knobs.tool_calls = calls_until_answered({"name": "clinic_address", "arguments": {}})
        fake.knobs.reply = answer_from_tools
        sent = Sent()
        ctx = turn_context(
            Providers(stt=FakeSTT(), llm=llm, tts=FakeTTS()),
            agent=AGENT,
            deadlines=DEADLINES,
            send=sent,
        )
        ctx.tools = box
        async with Playback(ctx.speaker):
            result = await Turn(ctx, 1, text="Where are you?").run()
        assert result.outcome == "completed" and "Harbour Street" in result.reply
        assert sent.of("tool_call", name="clinic_address")
        assert sent.of("tool_result", ok=True, summary="12 Harbour Street, Leith")
    finally:
        await llm.close()
        await fake.close()


async def test_mcp_over_streamable_http(tmp_path: Path) -> None:
    import asyncio
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.mcp_server",
        "--http",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    servers = McpServers()
    try:
        box = Toolbox()
        spec = McpServerSpec(name="web", url=f"http://127.0.0.1:{port}/mcp", timeout_s=10.0)
        # The server takes a moment to listen: the link retries until it does.
        link = await servers.add("receptionist", spec, box)
        await wait_until(lambda: link.available, timeout=30.0)
        total = await box.call(call("add", a=40, b=2))
        assert total.ok and json.loads(total.content) == {"sum": 42}
    finally:
        await servers.close()
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
