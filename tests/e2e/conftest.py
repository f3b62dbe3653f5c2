"""Browser fixtures: Debian's chromium driven by Playwright against the real page.

Chromium gets a WAV file as its microphone and connects over loopback only
(DESIGN.md §9), so the suite works inside `unshare -n` with nothing but `lo`.
"""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SAMPLE_RATE = 48000

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Every flag is there for a reason: the fake device and its auto-accepted
# prompt stand in for a person's microphone; loopback candidates are the only
# ones a network namespace has; the rest stop chromium phoning home (there is
# no network) or needing a GPU or sandbox the container doesn't offer.
BASE_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(SAMPLE_RATE * seconds)


def write_wav(path: Path, pcm48k: bytes) -> Path:
    """48 kHz mono s16le PCM as a WAV chromium can use as its microphone."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm48k)
    return path


@pytest.fixture
def chromium_path() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class PageErrors:
    """JS exceptions and console errors: a page that throws fails its test."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        """A console error the test itself provokes (say, a refused request)."""
        self.allowed.append(fragment)

    def attach(self, page) -> None:
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and self._console(msg.text))

    def _console(self, text: str) -> None:
        if not any(fragment in text for fragment in self.allowed):
            self.messages.append(f"console: {text}")


@pytest.fixture
async def browser(
    chromium_path: Path, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[object]]]:
    """A factory: ``await browser(wav=path, loop=True)`` -> a fresh persistent
    context (its own user-data-dir) whose microphone plays ``wav``."""
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    contexts = []
    errors = PageErrors()

    async def launch(wav: Path, *, loop: bool = True, viewport: dict | None = None):
        # Without %noloop chromium replays the file for as long as capture runs.
        capture = f"--use-file-for-fake-audio-capture={wav}{'' if loop else '%noloop'}"
        context = await playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / f"profile-{len(contexts)}"),
            executable_path=str(chromium_path),
            headless=True,
            args=[*BASE_ARGS, capture],
            viewport=viewport or DESKTOP,
        )
        contexts.append(context)
        context.on("page", errors.attach)
        for page in context.pages:
            errors.attach(page)
        return context

    launch.errors = errors  # type: ignore[attr-defined]
    try:
        yield launch
    finally:
        for context in contexts:
            await context.close()
        await playwright.stop()
    assert not errors.messages, "the page logged errors:\n" + "\n".join(errors.messages)


async def health_sessions(base_url: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/health") as response:
            return (await response.json())["sessions"]


async def wait_sessions(base_url: str, expected: int, timeout: float = 10.0) -> None:
    """Polls /health until it reports ``expected`` live sessions."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (n := await health_sessions(base_url)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/health says {n} sessions, expected {expected}")
        await asyncio.sleep(0.1)
