"""Custom HTTP tools (webhooks) against a real loopback HTTP server: the
arguments POSTed as JSON with the configured headers, the answer back to the
model, and 4xx/5xx/timeouts/bad arguments as error results it can explain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from media_server.agents import AgentConfigError, parse_agents_toml
from media_server.tools.http_tool import HttpTools
from media_server.tools.registry import Toolbox
from media_server.types import ToolCall


class Webhook:
    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.status = 200
        self.body: str = json.dumps({"covered": True, "summary": "Covered by Acme"})
        self.hang = False
        self.released = asyncio.Event()  # a hanging answer ends when the test is over

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), dict(request.headers)))
        if self.hang:
            await self.released.wait()
        return web.Response(status=self.status, text=self.body, content_type="application/json")


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/api/insurance", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield hook, f"http://127.0.0.1:{port}/api/insurance"
    hook.released.set()
    await runner.cleanup()


def agents_toml(url: str, timeout_s: float = 5) -> str:
    return f"""
[agents.dentist]
name = "Dentist"
description = "A dental clinic"
prompt = "You book dental visits."

[agents.dentist.tools.check_insurance]
description = "Check whether a patient's insurance covers a visit"
url = "{url}"
timeout_s = {timeout_s}
headers = {{ Authorization = "Bearer ${{CLINIC_TOKEN}}" }}

[agents.dentist.tools.check_insurance.parameters]
type = "object"
properties = {{ member_id = {{ type = "string" }} }}
required = ["member_id"]
"""


@pytest.fixture
async def http_tools() -> AsyncIterator[HttpTools]:
    tools = HttpTools()
    yield tools
    await tools.close()


def box_for(text: str, http: HttpTools) -> Toolbox:
    import os

    os.environ["CLINIC_TOKEN"] = "tok-123"
    try:
        agent = parse_agents_toml(text)["dentist"]
    finally:
        del os.environ["CLINIC_TOKEN"]
    return Toolbox(http.tool(spec) for spec in agent.tools)


def check(**arguments) -> ToolCall:
    return ToolCall("c1", "check_insurance", json.dumps(arguments))


async def test_a_webhook_gets_the_arguments_and_its_answer_goes_back(webhook, http_tools):
    hook, url = webhook
    box = box_for(agents_toml(url), http_tools)
    result = await box.call(check(member_id="M-77"))
    assert result.ok and json.loads(result.content) == {
        "covered": True,
        "summary": "Covered by Acme",
    }
    assert result.summary == "Covered by Acme"
    [(body, headers)] = hook.received
    assert body == {"member_id": "M-77"}
    assert headers["Authorization"] == "Bearer tok-123"  # ${CLINIC_TOKEN} from the environment


async def test_a_failing_webhook_is_an_error_result(webhook, http_tools):
    hook, url = webhook
    box = box_for(agents_toml(url), http_tools)
    hook.status, hook.body = 503, '{"detail": "insurer offline"}'
    failed = await box.call(check(member_id="M-77"))
    assert not failed.ok and "HTTP 503" in failed.summary and "insurer offline" in failed.summary
    hook.status = 404
    assert "HTTP 404" in (await box.call(check(member_id="M-77"))).summary


async def test_a_webhook_past_its_timeout_is_an_error_result(webhook, http_tools):
    hook, url = webhook
    hook.hang = True
    box = box_for(agents_toml(url, timeout_s=0.3), http_tools)
    late = await box.call(check(member_id="M-77"))
    assert not late.ok and "did not answer within 0.3 s" in late.summary


async def test_arguments_are_checked_before_any_request(webhook, http_tools):
    hook, url = webhook
    box = box_for(agents_toml(url), http_tools)
    bad = await box.call(check(member=7))
    assert not bad.ok and "'member_id' is a required property" in bad.summary
    assert hook.received == []


async def test_a_refused_connection_is_an_error_result(http_tools):
    box = box_for(agents_toml("http://127.0.0.1:9/nothing"), http_tools)
    refused = await box.call(check(member_id="M-1"))
    assert not refused.ok and "could not be reached" in refused.summary


def test_bad_tool_tables_are_refused_with_the_field_named():
    base = agents_toml("http://127.0.0.1:1/x")
    with pytest.raises(AgentConfigError, match=r"CLINIC_TOKEN\}, which is not set"):
        parse_agents_toml(base)
    import os

    os.environ["CLINIC_TOKEN"] = "x"
    try:
        with pytest.raises(AgentConfigError, match="url must be an http"):
            parse_agents_toml(base.replace("http://127.0.0.1:1/x", "ftp://x"))
        with pytest.raises(AgentConfigError, match="timeout_s must be above 0"):
            parse_agents_toml(agents_toml("http://127.0.0.1:1/x", timeout_s=0))
        with pytest.raises(AgentConfigError, match="not a valid JSON schema"):
            parse_agents_toml(base.replace('type = "string"', 'type = "strung"'))
        with pytest.raises(AgentConfigError, match="either command"):
            parse_agents_toml(base + '\n[[agents.dentist.mcp]]\nargs = ["x"]\n')
    finally:
        del os.environ["CLINIC_TOKEN"]


async def test_a_failing_webhook_in_a_turn_is_explained_by_the_model(webhook, http_tools):
    from tests.fakes.openai_fake import start_openai_fake
    from tests.unit.test_tool_turns import KEY, Rig, calls_until_answered, tool_messages

    hook, url = webhook
    hook.status, hook.body = 502, "bad gateway"
    fake = await start_openai_fake(api_key=KEY)
    fake.knobs.tool_calls = calls_until_answered(
        {"name": "check_insurance", "arguments": {"member_id": "M-9"}}
    )
    fake.knobs.reply = lambda body: (
        "Sorry, the insurance check is down right now."
        if "error" in json.loads(tool_messages(body)[0]["content"])
        else "You are covered."
    )
    box = box_for(agents_toml(url), http_tools)
    r = Rig(fake, [])
    r.ctx.tools = box
    try:
        result = await r.run_text("Am I covered? My member id is M-9")
        assert result.outcome == "completed"
        assert result.reply == "Sorry, the insurance check is down right now."
        [answer] = tool_messages(fake.requests[-1].json)
        assert json.loads(answer["content"]) == {
            "error": "check_insurance answered HTTP 502: bad gateway"
        }
        assert r.sent.of("tool_result", ok=False)
    finally:
        await r.llm.close()
        await fake.close()
