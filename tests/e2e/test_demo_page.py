"""The demo page in a real browser: Debian's chromium, a WAV as its microphone,
the in-process server on loopback (DESIGN.md §9)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Page, expect

from media_server.providers.base import Providers
from media_server.providers.pocketsphinx_stt import PocketsphinxSTT
from media_server.providers.scripted_llm import ScriptedLLM
from media_server.session import VoiceSession
from media_server.types import ChatMessage, ProviderError, ReplyOptions
from tests.conftest import embedded_providers, speech_48k
from tests.e2e.conftest import PHONE, health_sessions, silence, wait_sessions, write_wav

pytestmark = pytest.mark.e2e

BOOKING = "I would like to book an appointment for tomorrow."
TURN_S = 30_000  # ms: a whole offline turn (whisper, scripted, espeak) on a slow CI box


async def open_page(context, base_url: str) -> Page:
    page = context.pages[0] if context.pages else await context.new_page()
    await page.goto(base_url + "/")
    await expect(page.get_by_test_id("agent-select").locator("option")).to_have_count(3)
    await expect(page.get_by_test_id("start-button")).to_be_enabled()
    return page


async def start_call(page: Page, agent_id: str) -> None:
    await page.get_by_test_id("agent-select").select_option(agent_id)
    await page.get_by_test_id("start-button").click()
    await expect_status(page, "idle", timeout=15_000)
    await expect(page.get_by_test_id("text-input")).to_be_enabled()


async def expect_status(page: Page, status: str, timeout: float = TURN_S) -> None:
    await expect(page.get_by_test_id("status")).to_have_attribute(
        "data-status", status, timeout=timeout
    )


async def type_turn(page: Page, text: str, *, use_enter: bool = False, whole: bool = True):
    """Types a turn; waits until the reply is fully written, and with ``whole``
    also until it has been spoken (metrics in, status back to idle)."""
    turns = page.locator("[data-testid=transcript] .turn")
    turn = turns.nth(await turns.count())
    box = page.get_by_test_id("text-input")
    await box.fill(text)
    if use_enter:
        await box.press("Enter")
    else:
        await page.get_by_test_id("send-button").click()
    await expect(turn.get_by_test_id("user-message")).to_contain_text(text)
    reply = turn.get_by_test_id("agent-message")
    await expect(reply).to_be_visible(timeout=TURN_S)
    await expect(reply).not_to_have_class(re.compile("streaming"), timeout=TURN_S)
    assert (await reply.locator(".text").inner_text()).strip()
    if whole:
        await expect(turn.locator(".turn-latency")).to_be_attached(timeout=TURN_S)
        await expect_status(page, "idle")
    return turn


async def test_a_beeping_microphone_does_not_cut_a_typed_answer(
    server_factory, browser, tmp_path: Path
):
    # Chromium's fake microphone beeps (1 kHz, 100 ms a second). Loudness
    # alone took each beep for speech over the agent and cut every reply.
    t = np.arange(48000 * 30) / 48000
    beeps = np.where((t % 1.0) < 0.1, 0.3 * np.sin(2 * np.pi * 1000 * t), 0.0)
    wav = write_wav(tmp_path / "beeps.wav", (beeps * 32767).astype("<i2").tobytes())
    server = await server_factory()
    context = await browser(wav)
    page = await open_page(context, server.base_url)
    await start_call(page, "callcenter")
    turn = await type_turn(page, "My internet is very slow today, what can I do?")
    await expect(turn.get_by_test_id("interrupted-marker")).to_have_count(0)
    assert await page.locator("[data-testid=transcript] .turn").count() == 1  # no beep turns


async def test_words_show_as_they_are_heard_then_the_final_transcript(
    server_factory, browser, tmp_path: Path
):
    # A long wait for an unfinished sentence, so the words of a slow decode
    # (a loaded CI box) still arrive while the person is paused. The page's
    # interim words are checked with the streaming recognizer (pocketsphinx):
    # its words at a pause come at once, where Whisper's speculative decode
    # may come after a 500 ms pause has already ended the turn.
    embedded = embedded_providers()
    streaming = PocketsphinxSTT()
    server = await server_factory(
        Providers(stt=streaming, llm=embedded.llm, tts=embedded.tts), TURN_MAX_WAIT_MS="5000"
    )
    # A pause mid-sentence: the words so far show (greyed) before the turn ends.
    wav = write_wav(
        tmp_path / "paused.wav",
        silence(1.5)
        + speech_48k("I would like to book an appointment for")
        + silence(3.0)
        + speech_48k("tomorrow morning")
        + silence(20),
    )
    context = await browser(wav)
    page = await open_page(context, server.base_url)
    await start_call(page, "receptionist")
    # Polled every 50 ms: expect() polls once a second after its first tries,
    # and interim words may stand for less than that.
    await page.wait_for_function(
        """() => {
            const user = document.querySelector(
                '[data-testid=transcript] .turn [data-testid=user-message]');
            return user && user.classList.contains('interim')
                && /\\S/.test(user.querySelector('.text').textContent);
        }""",
        polling=50,
        timeout=TURN_S,
    )
    user = page.locator("[data-testid=transcript] .turn").first.get_by_test_id("user-message")
    # The turn's own transcript replaces it, and the agent answers that.
    await expect(user).not_to_have_class(re.compile(r"\binterim\b"), timeout=TURN_S)
    await expect(page.get_by_test_id("agent-message").first).to_be_visible(timeout=TURN_S)
    await server.close()
    await streaming.close()


async def test_spoken_turn_shows_transcript_reply_and_plays_audio(
    server_factory, browser, tmp_path: Path, artifacts: Path
):
    server = await server_factory()
    # Lead-in silence covers connecting; the long tail lets the turn finish
    # before the looped file speaks again.
    wav = write_wav(tmp_path / "booking.wav", silence(1.5) + speech_48k(BOOKING) + silence(20))
    context = await browser(wav)
    page = await open_page(context, server.base_url)

    await start_call(page, "receptionist")
    # The meter moves while the fake mic speaks.
    await page.wait_for_function(
        "Number(document.querySelector('[data-testid=mic-level]').dataset.level) > 30",
        timeout=10_000,
    )
    await expect_status(page, "listening", timeout=10_000)
    await page.screenshot(path=artifacts / "e2e-desktop-listening.png")

    turn = page.locator("[data-testid=transcript] .turn").first
    heard = turn.get_by_test_id("user-message").locator(".text")
    await expect(heard).to_have_text(re.compile(r"\S"), timeout=TURN_S)
    await expect(turn.get_by_test_id("agent-message")).to_be_visible(timeout=TURN_S)
    await expect_status(page, "speaking")
    await page.screenshot(path=artifacts / "e2e-desktop-spoken-turn.png")

    await expect(page.get_by_test_id("latency")).to_have_attribute(
        "data-turn-id", "1", timeout=TURN_S
    )
    await expect_status(page, "idle")
    await page.screenshot(path=artifacts / "e2e-desktop-spoken-turn-latency.png", full_page=True)
    latency = await page.get_by_test_id("latency").inner_text()
    assert "Transcript" in latency and "First reply text" in latency, latency
    assert (await page.get_by_test_id("providers").inner_text()).startswith(
        "offline engines: whisper · scripted · espeak"
    )

    # What the person heard: energy in the agent's inbound audio, as the
    # browser itself measured it.
    playing = await page.evaluate(
        "(() => { const a = document.getElementById('agent-audio');"
        " return a.srcObject !== null && !a.paused; })()"
    )
    assert playing, "the agent's audio element is not playing"
    stats = await page.evaluate("window.voiceDemo.pollStats()")
    assert stats["packetsReceived"] > 50, stats
    assert stats["totalAudioEnergy"] > 0.01, stats
    network = await page.get_by_test_id("network").inner_text()
    assert "Round trip" in network and "Jitter buffer" in network


async def test_typed_turns_interrupt_switching_agents_and_stop(
    server_factory, browser, tmp_path: Path, artifacts: Path
):
    server = await server_factory()
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_page(context, server.base_url)

    description = page.locator("#agent-description")
    await page.get_by_test_id("agent-select").select_option("sales")
    await expect(description).to_have_text("Professional sales agent for product inquiries")

    await start_call(page, "receptionist")
    first_session = await page.evaluate("window.voiceDemo.sessionId")

    # Cut the agent off with Esc while it talks: the reply keeps what was
    # heard and shows where it stopped.
    cut = await type_turn(page, "What are your opening hours?", use_enter=True, whole=False)
    await expect(cut.get_by_test_id("user-message")).to_contain_text("You (typed)")
    await expect_status(page, "speaking")
    await page.keyboard.press("Escape")
    await expect(cut.get_by_test_id("interrupted-marker")).to_be_visible()
    await expect_status(page, "idle", timeout=5_000)

    await type_turn(page, "I would like to book an appointment for Monday at ten.")
    await expect(page.get_by_test_id("latency")).to_contain_text("First reply text")
    await page.screenshot(path=artifacts / "e2e-desktop-typed-turns.png")

    # Switching the picker mid-call moves the call to the other agent.
    await page.get_by_test_id("agent-select").select_option("sales")
    await expect(page.get_by_test_id("transcript")).to_contain_text("Connected to Sales Agent")
    await expect(page.get_by_test_id("text-input")).to_be_enabled()
    await wait_sessions(server.base_url, 1)  # the receptionist's session was freed
    assert await page.evaluate("window.voiceDemo.sessionId") != first_session
    await type_turn(page, "How much does the pro plan cost?", whole=False)

    await page.set_viewport_size(PHONE)
    await page.screenshot(path=artifacts / "e2e-phone-conversation.png", full_page=True)

    # Stop in mid-reply: the page hangs up and the server frees the session.
    await page.get_by_test_id("stop-button").click()
    await expect_status(page, "disconnected", timeout=5_000)
    await expect(page.get_by_test_id("text-input")).to_be_disabled()
    await wait_sessions(server.base_url, 0)


class FlakyLLM:
    """A real LanguageModel that refuses its first ``failures`` requests."""

    name = "scripted"

    def __init__(self, kind: str, failures: int) -> None:
        self.kind = kind
        self.failures = failures
        self.calls = 0
        self.inner = ScriptedLLM()

    async def stream_reply(
        self, messages: Sequence[ChatMessage], options: ReplyOptions
    ) -> AsyncIterator[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ProviderError("llm", self.kind, "test: refused")
        async for delta in self.inner.stream_reply(messages, options):
            yield delta

    async def warm_up(self) -> None:
        await self.inner.warm_up()

    async def close(self) -> None:
        await self.inner.close()


def flaky_providers(llm: FlakyLLM) -> Providers:
    embedded = embedded_providers()
    return Providers(stt=embedded.stt, llm=llm, tts=embedded.tts)


async def test_provider_error_shows_banner_and_retry_works(
    server_factory, browser, tmp_path: Path, artifacts: Path
):
    # "unavailable" is retryable and turn.py retries once: two refusals fail
    # the first turn, the third request succeeds.
    llm = FlakyLLM("unavailable", failures=2)
    server = await server_factory(flaky_providers(llm))
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_page(context, server.base_url)

    # Keyboard only: pick the agent, Tab to Start, Enter; focus lands in the box.
    await page.get_by_test_id("agent-select").select_option("callcenter")
    await page.get_by_test_id("agent-select").focus()
    await page.keyboard.press("Tab")
    await expect(page.get_by_test_id("start-button")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect_status(page, "idle", timeout=15_000)
    await expect(page.get_by_test_id("text-input")).to_be_focused()
    await page.keyboard.type("My internet is not working.")
    await page.keyboard.press("Enter")

    banner = page.get_by_test_id("error")
    await expect(banner).to_be_visible(timeout=TURN_S)
    await expect(banner).to_contain_text("language model")
    await expect(page.get_by_test_id("transcript").locator(".turn-error")).to_be_visible()
    await expect_status(page, "idle")
    await page.screenshot(path=artifacts / "e2e-desktop-error.png")

    # A typed turn that failed on a retryable error can be sent again as is.
    turns = page.locator("[data-testid=transcript] .turn")
    await page.get_by_test_id("retry-button").click()
    second = turns.nth(1)
    await expect(second.get_by_test_id("user-message")).to_contain_text(
        "My internet is not working."
    )
    await expect(second.get_by_test_id("agent-message")).not_to_have_class(
        re.compile("streaming"), timeout=TURN_S
    )
    await expect(banner).to_be_hidden()  # the new turn made the old error history
    assert llm.calls == 3
    assert await health_sessions(server.base_url) == 1


async def test_rejected_key_ends_the_call_and_start_again_works(
    server_factory, browser, tmp_path: Path
):
    # An "auth" refusal can't get better by retrying: the server ends the
    # session and says why; the page offers a fresh start.
    llm = FlakyLLM("auth", failures=1)
    server = await server_factory(flaky_providers(llm))
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_page(context, server.base_url)
    await start_call(page, "sales")

    await page.get_by_test_id("text-input").fill("Tell me about your plans.")
    await page.get_by_test_id("send-button").click()
    banner = page.get_by_test_id("error")
    await expect(banner).to_contain_text("rejected the server's API key", timeout=TURN_S)
    await expect_status(page, "ended")
    await wait_sessions(server.base_url, 0)

    await page.get_by_test_id("reconnect-button").click()
    await expect_status(page, "idle", timeout=15_000)
    await expect(page.get_by_test_id("agent-select")).to_have_value("sales")
    await type_turn(page, "Tell me about your plans.", whole=False)


async def test_microphone_denied_or_missing_then_typing_only(server_factory, browser, tmp_path):
    server = await server_factory()
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    # Stand-in for the person's answer to the permission prompt.
    await context.add_init_script(
        """
        navigator.mediaDevices.getUserMedia = async () => {
          throw new DOMException("test", window.__micFailure || "NotAllowedError");
        };
        """
    )
    page = await open_page(context, server.base_url)
    banner = page.get_by_test_id("error")

    await page.get_by_test_id("start-button").click()
    await expect(banner).to_contain_text("Microphone access is blocked")
    await expect_status(page, "disconnected")
    await page.evaluate("window.__micFailure = 'NotFoundError'")
    await page.get_by_test_id("retry-button").click()
    await expect(banner).to_contain_text("No microphone was found")

    # Keyboard only: the banner puts focus on its first button.
    await expect(page.get_by_test_id("retry-button")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_test_id("typing-only-button")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect_status(page, "idle", timeout=15_000)
    await expect(banner).to_be_hidden()
    await type_turn(page, "Hello there", whole=False)
    assert await health_sessions(server.base_url) == 1


async def test_busy_server_says_so_and_retry_connects(server_factory, browser, tmp_path):
    server = await server_factory()
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    browser.errors.allow("status of 503")
    page = await open_page(context, server.base_url)
    refused = []

    async def busy_once(route):
        if refused:
            await route.continue_()
            return
        refused.append(route.request.url)
        await route.fulfill(
            status=503,
            json={"error": {"code": "at_capacity", "message": "The server is busy; try again."}},
        )

    await page.route("**/api/offer", busy_once)
    await page.get_by_test_id("start-button").click()
    await expect(page.get_by_test_id("error")).to_contain_text("The server is busy; try again.")
    await expect_status(page, "disconnected")
    await page.get_by_test_id("retry-button").click()
    await expect_status(page, "idle", timeout=15_000)
    await expect(page.get_by_test_id("error")).to_be_hidden()
    assert len(refused) == 1 and await health_sessions(server.base_url) == 1


async def test_stop_while_connecting_ends_the_server_session(server_factory, browser, tmp_path):
    # A connect deadline far beyond the test's own: only the page hanging up
    # can free the session in time.
    server = await server_factory(CONNECT_TIMEOUT_S=60)
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_page(context, server.base_url)
    stopped = asyncio.Event()

    async def hold_answer(route):
        # The server has opened the session; the page sees its answer only
        # once Stop was pressed.
        response = await route.fetch()
        await stopped.wait()
        await route.fulfill(response=response)

    await page.route("**/api/offer", hold_answer)
    await page.get_by_test_id("start-button").click()
    await wait_sessions(server.base_url, 1)
    await expect_status(page, "connecting")
    await page.get_by_test_id("stop-button").click()
    await expect_status(page, "disconnected")
    stopped.set()

    await wait_sessions(server.base_url, 0, timeout=15)
    await expect_status(page, "disconnected")
    await expect(page.get_by_test_id("start-button")).to_be_enabled()
    await expect(page.get_by_test_id("text-input")).to_be_disabled()
    await expect(page.get_by_test_id("error")).to_be_hidden()


TOKEN_SECRET = "e2e-secret-0123456789abcdef"


async def open_with_token(context, base_url: str, agent_id: str) -> Page:
    from signaling.tokens import mint_token

    page = context.pages[0]
    await page.goto(f"{base_url}/?agent={agent_id}&token={mint_token(TOKEN_SECRET, 60)}")
    await expect(page.get_by_test_id("start-button")).to_be_enabled()
    assert "token" not in page.url  # taken out of the address bar
    await expect(page.get_by_test_id("agent-select")).to_have_value(agent_id)
    return page


async def expect_new_link_needed(page: Page) -> None:
    """The call on a one-use link is over: the page says a new link is needed
    and offers nothing that would resend the spent token."""
    banner = page.get_by_test_id("error")
    await expect(banner).to_contain_text("new link")
    await expect(page.get_by_test_id("transcript")).to_contain_text("new link")
    again = re.compile("again|reconnect", re.IGNORECASE)
    await expect(banner.get_by_role("button", name=again)).to_have_count(0)
    await expect(page.get_by_test_id("start-button")).to_be_disabled()
    await expect(page.get_by_test_id("agent-select")).to_be_disabled()
    await expect(banner).not_to_contain_text("already used")


async def test_one_use_link_retries_until_used_then_asks_for_a_new_link(
    server_factory, browser, tmp_path
):
    server = await server_factory(AUTH_SECRET=TOKEN_SECRET)
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    browser.errors.allow("net::ERR_FAILED")
    page = await open_with_token(context, server.base_url, "sales")

    # The offer never reached the server, so the token is still unused:
    # trying again is the right offer, and it works.
    await page.route("**/api/offer", lambda route: route.abort(), times=1)
    await page.get_by_test_id("start-button").click()
    await expect(page.get_by_test_id("error")).to_contain_text("Couldn't reach the server")
    await page.get_by_test_id("retry-button").click()
    await expect_status(page, "idle", timeout=15_000)
    await expect(page.get_by_test_id("error")).to_be_hidden()

    # The token opened its one session: after Stop the page says so.
    await page.get_by_test_id("stop-button").click()
    await expect_status(page, "disconnected")
    await wait_sessions(server.base_url, 0)
    await expect_new_link_needed(page)


@pytest.mark.parametrize("ending", ["ended", "lost"])
async def test_one_use_link_ended_or_lost_asks_for_a_new_link(
    server_factory, browser, tmp_path, monkeypatch, ending: str
):
    if ending == "ended":  # the server ends the call on its own
        server = await server_factory(AUTH_SECRET=TOKEN_SECRET, IDLE_TIMEOUT_S=3)
    else:  # the server stops answering pings
        server = await server_factory(AUTH_SECRET=TOKEN_SECRET)
        monkeypatch.setattr(VoiceSession, "_on_message", deaf_to_pings(VoiceSession._on_message))
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_with_token(context, server.base_url, "receptionist")

    await page.get_by_test_id("start-button").click()
    await expect(page.get_by_test_id("transcript")).to_contain_text("Connected to")
    await expect_status(page, ending, timeout=15_000)
    await wait_sessions(server.base_url, 0)
    await expect_new_link_needed(page)


def deaf_to_pings(on_message):
    """Wraps ``VoiceSession._on_message`` so the server never answers a ping:
    to the page the link has gone quiet."""

    def handler(self, raw):
        if '"ping"' not in str(raw):
            on_message(self, raw)

    return handler


async def test_lost_connection_offers_reconnect_with_the_same_agent(
    server_factory, browser, tmp_path: Path, monkeypatch
):
    server = await server_factory()
    # The server stops answering pings: to the page the link has gone quiet.
    monkeypatch.setattr(VoiceSession, "_on_message", deaf_to_pings(VoiceSession._on_message))
    context = await browser(write_wav(tmp_path / "quiet.wav", silence(2)))
    page = await open_page(context, server.base_url)
    await start_call(page, "sales")
    first_session = await page.evaluate("window.voiceDemo.sessionId")

    reconnect = page.get_by_test_id("reconnect-button")
    await expect(reconnect).to_be_visible(timeout=12_000)
    await expect_status(page, "lost")
    await expect(page.get_by_test_id("error")).to_contain_text("Lost the connection")
    await wait_sessions(server.base_url, 0)  # the page hung up its side

    monkeypatch.undo()
    await reconnect.click()
    await expect_status(page, "idle", timeout=15_000)
    assert await page.evaluate("window.voiceDemo.sessionId") not in (None, first_session)
    await expect(page.get_by_test_id("transcript")).to_contain_text("Connected to Sales Agent")
    await type_turn(page, "Can I book a demo?", whole=False)
