"""The page shows the agent acting: a booking typed to the offline
receptionist draws its tool call and outcome in the conversation, and the
transcript of the call downloads at its end (real Chromium, real server)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import silence, write_wav
from tests.e2e.test_demo_page import expect_status, open_page, start_call, type_turn

pytestmark = pytest.mark.e2e


async def test_a_booking_shows_on_the_page_and_the_transcript_downloads(
    server_factory, browser, tmp_path: Path, artifacts: Path
):
    server = await server_factory(database_url=f"sqlite:///{tmp_path}/data/voice-agent.db")
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_page(context, server.base_url)
    await start_call(page, "receptionist")

    await type_turn(page, "I'd like to book an appointment for a checkup")
    await type_turn(page, "My name is Grace Hopper")
    await type_turn(page, "Tuesday at 11 am")
    turn = await type_turn(page, "555 246 8100")
    tool = turn.get_by_test_id("tool-call")
    await expect(tool).to_have_attribute("data-tool", "book_appointment")
    await expect(tool).to_have_text(re.compile(r"^✓ Booked: Tue \d+ \w{3}, 11:00$"))
    await expect(tool).to_have_class(re.compile("tool-ok"))
    await page.screenshot(path=artifacts / "e2e-booking-tool-call.png")

    await page.get_by_test_id("stop-button").click()
    await expect_status(page, "disconnected", timeout=5_000)
    download_button = page.get_by_test_id("transcript-download")
    await expect(download_button).to_be_visible()
    async with page.expect_download() as info:
        await download_button.click()
    download = await info.value
    saved = tmp_path / "transcript.json"
    await download.save_as(saved)
    record = json.loads(saved.read_text())
    assert record["agent_id"] == "receptionist"
    heard = [t["heard"] for t in record["turns"]]
    assert heard[-1] == "555 246 8100" and len(heard) == 4
    [booking] = record["turns"][-1]["tools"]
    assert booking["name"] == "book_appointment" and booking["ok"] is True
    assert booking["arguments"]["name"] == "Grace Hopper"
