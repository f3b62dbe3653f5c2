"""A call that can only go through a TURN relay: Debian's coturn on loopback,
Chromium with ``iceTransportPolicy: "relay"`` (served by the server as
ICE_TRANSPORT_POLICY=relay), credentials minted per call from TURN_SECRET."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.conftest import speech_48k
from tests.e2e.conftest import silence, wait_sessions, write_wav
from tests.e2e.test_demo_page import TURN_S, open_page, start_call
from tests.services.coturn import coturn

pytestmark = pytest.mark.e2e


async def test_a_relay_only_call_talks_both_ways_through_coturn(
    server_factory, browser, tmp_path: Path, artifacts: Path
):
    with coturn(tmp_path) as turn:
        server = await server_factory(
            TURN_URLS=turn.url, TURN_SECRET=turn.secret, ICE_TRANSPORT_POLICY="relay"
        )
        wav = write_wav(
            tmp_path / "booking.wav",
            silence(1.5) + speech_48k("I would like to book an appointment.") + silence(20),
        )
        page = await open_page(await browser(wav), server.base_url)
        await start_call(page, "receptionist")

        # In: the browser's speech reached the server and was transcribed.
        turn_el = page.locator("[data-testid=transcript] .turn").first
        heard = turn_el.get_by_test_id("user-message").locator(".text")
        await expect(heard).to_have_text(re.compile(r"\S"), timeout=TURN_S)
        # Out: the agent's voice arrived with energy in it.
        await expect(turn_el.get_by_test_id("agent-message")).to_be_visible(timeout=TURN_S)
        await page.wait_for_function(
            "window.voiceDemo.pollStats().then(s => s && s.totalAudioEnergy > 0.01)",
            timeout=TURN_S,
            polling=500,
        )
        stats = await page.evaluate("window.voiceDemo.pollStats()")
        assert stats["packetsReceived"] > 50, stats
        # The pair in use is the browser's relay candidate (and, relay-only
        # on both ends, the server's too).
        assert stats["localCandidateType"] == "relay", stats
        assert stats["remoteCandidateType"] == "relay", stats
        await expect(page.get_by_test_id("network")).to_have_attribute("data-route", "relay")
        await page.screenshot(path=artifacts / "e2e-relay-call.png", full_page=True)
        # Hang up while coturn still runs: both ends then free their
        # allocations at once instead of waiting on a relay that is gone.
        await page.get_by_test_id("stop-button").click()
        await wait_sessions(server.base_url, 0)
        log = turn.service.log()
    # Two allocations: the browser's and the server's own peer.
    assert len(re.findall(r"ALLOCATE processed, success", log)) >= 2, log[-3000:]


async def test_a_wrong_turn_secret_says_so_on_the_page(
    server_factory, browser, tmp_path: Path, artifacts: Path
):
    with coturn(tmp_path) as turn:
        server = await server_factory(
            TURN_URLS=turn.url, TURN_SECRET="not-the-" + turn.secret, ICE_TRANSPORT_POLICY="relay"
        )
        page = await open_page(
            await browser(write_wav(tmp_path / "q.wav", silence(2))), server.base_url
        )
        await page.get_by_test_id("agent-select").select_option("receptionist")
        await page.get_by_test_id("start-button").click()
        await expect(page.get_by_test_id("error")).to_contain_text(
            "The relay server (TURN) refused this server's credentials", timeout=15_000
        )
        await expect(page.get_by_test_id("error")).to_contain_text("TURN_SECRET")
        await page.screenshot(path=artifacts / "e2e-relay-wrong-secret.png")
    assert server.session_count == 0  # no offer was sent with nowhere to send audio
