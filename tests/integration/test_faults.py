"""Provider faults end to end: a real client, a running server, and cloud
providers (the real ``openai`` SDK) against the loopback fakes.

Each stage's failures, hangs and bad output give the person one clear error
and the next turn works; consecutive failures of a stage (or a wrong key)
end the session with ``session_end: provider_unavailable``, said first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from media_server.providers.base import Providers
from media_server.providers.openai_llm import OpenAILLM
from media_server.providers.openai_stt import OpenAISTT
from media_server.providers.openai_tts import OpenAITTS
from tests.conftest import speech_48k
from tests.fakes.openai_fake import OpenAIFake, start_openai_fake
from tests.voice_client import VoiceClient

KEY = "sk-test-faults-0123456789abcdef"
REPLY = "Happy to help with that."  # one TTS piece ("Sure," would be one of its own)
SPOKEN = "Book a room."
# Short deadlines so a hang costs ~2 s (first try, one retry), not 30. No
# speculative transcription at pauses: these count the turn's own requests
# (speculation and its faults: test_end_of_turn.py).
FAST = {"stt_timeout_s": 1, "llm_timeout_s": 1, "tts_timeout_s": 1, "turn_max_speculative": 0}


@dataclass
class Cloud:
    stt: OpenAIFake
    llm: OpenAIFake
    tts: OpenAIFake
    providers: Providers

    def fake(self, stage: str) -> OpenAIFake:
        return {"stt": self.stt, "llm": self.llm, "tts": self.tts}[stage]


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    """One fake per stage, so a knob breaks exactly one stage."""
    stt = await start_openai_fake(api_key=KEY)
    llm = await start_openai_fake(api_key=KEY, reply=REPLY)
    tts = await start_openai_fake(api_key=KEY, speech_seconds=0.4)
    providers = Providers(
        stt=OpenAISTT(api_key=KEY, base_url=stt.base_url, min_duration_s=0.2),
        llm=OpenAILLM(api_key=KEY, base_url=llm.base_url),
        tts=OpenAITTS(api_key=KEY, base_url=tts.base_url),
    )
    yield Cloud(stt, llm, tts, providers)
    await providers.close()
    for fake in (stt, llm, tts):
        await fake.close()


async def run_turn(client: VoiceClient, *, spoken: bool) -> list[dict[str, Any]]:
    """One turn, typed or spoken; the events from its start to its ``idle``."""
    since = len(client.events)
    if spoken:
        await client.say(speech_48k(SPOKEN))
    else:
        client.send({"type": "text_input", "text": "Can you help me?"})
    await client.wait_for("status_update", since=since, status="processing", timeout=10)
    start = next(
        i
        for i in range(since, len(client.events))
        if client.events[i] == {"type": "status_update", "status": "processing"}
    )
    await client.wait_for("status_update", since=start + 1, status="idle", timeout=20)
    await asyncio.sleep(0.05)  # anything that follows idle (there should be nothing)
    return client.events[since:]


def errors_in(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "error"]


def assert_completed(events: list[dict[str, Any]]) -> None:
    types = [e["type"] for e in events]
    assert not errors_in(events), events
    assert "transcription" in types and "turn_metrics" in types, types
    final = [e for e in events if e["type"] == "llm_response" and e["is_final"]]
    assert final and final[-1]["text"] == REPLY


def _set(**knobs: Any) -> Callable[[OpenAIFake], None]:
    def apply(fake: OpenAIFake) -> None:
        for name, value in knobs.items():
            setattr(fake.knobs, name, value)

    return apply


def _fail(status: int, count: int = 2) -> Callable[[OpenAIFake], None]:
    return lambda fake: fake.fail_next(status, count)


# One fault a stage through the whole WebRTC path. Every other fault (each
# HTTP status, bad bodies, stalls, empty replies) is mapped by the provider
# contract tests and handled by the turn's unit tests (tests/unit/test_turn.py)
# in milliseconds.
CASES = [
    # stage, fault, knobs to break it, expected error code
    ("stt", "http 500 twice", _fail(500), "stt_unavailable"),
    ("llm", "error mid-stream", _set(stream_error_after_tokens=2), "llm_unavailable"),
    ("tts", "stall mid-stream", _set(hold_after_chunks=1, chunk_size=512), "tts_timeout"),
]


@pytest.mark.parametrize(
    ("stage", "fault", "brk", "code"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
async def test_one_clear_error_then_the_next_turn_works(
    leak_check, cloud, server_factory, stage, fault, brk, code
):
    server = await server_factory(providers=cloud.providers, **FAST)
    fake = cloud.fake(stage)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        assert (await client.wait_for("connection_established"))["providers"] == {
            "stt": "openai",
            "llm": "openai",
            "tts": "openai",
        }
        spoken = stage == "stt"  # typed turns skip speech recognition
        saved = {k: getattr(fake.knobs, k) for k in vars(fake.knobs)}
        brk(fake)
        events = await run_turn(client, spoken=spoken)
        errors = errors_in(events)
        assert len(errors) == 1, events
        assert errors[0]["code"] == code and errors[0]["stage"] == stage
        message = errors[0]["message"]
        assert message and KEY not in message and "http" not in message.lower()
        assert not [e for e in events if e["type"] == "session_end"]

        for name, value in saved.items():  # the provider recovers
            setattr(fake.knobs, name, value)
        fake.release()
        assert_completed(await run_turn(client, spoken=spoken))
        assert server.session_count == 1
    finally:
        await client.close()


async def _ended(client: VoiceClient, server) -> list[dict[str, Any]]:
    end = await client.wait_for("session_end", timeout=10)
    assert end["reason"] == "provider_unavailable"
    for _ in range(50):
        if server.session_count == 0:
            break
        await asyncio.sleep(0.1)
    assert server.session_count == 0
    return client.events


async def test_error_budget_ends_the_session_and_says_so(leak_check, cloud, server_factory):
    server = await server_factory(providers=cloud.providers, provider_error_limit=3, **FAST)
    cloud.llm.fail_next(500, -1)  # down for good
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        for _ in range(2):
            events = await run_turn(client, spoken=False)
            assert [e["code"] for e in errors_in(events)] == ["llm_unavailable"]
        since = len(client.events)
        client.send({"type": "text_input", "text": "Hello?"})
        events = (await _ended(client, server))[since:]
        names = [e.get("code") or e.get("status") or e["type"] for e in events]
        # The turn's own error, back to idle, then why the session ends, then the end.
        assert names[-1] == "session_end", names
        order = [names.index(n) for n in ("llm_unavailable", "idle", "provider_unavailable")]
        assert order == sorted(order), names
        final = errors_in(events)[-1]
        assert final["stage"] == "llm" and not final["retryable"]
        assert "language model" in final["message"] and "ended" in final["message"]
    finally:
        await client.close()


async def test_a_success_resets_the_count(leak_check, cloud, server_factory):
    server = await server_factory(providers=cloud.providers, provider_error_limit=2, **FAST)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("sales")
        for _ in range(3):  # fail, succeed: never two failures in a row
            cloud.tts.fail_next(500, 2)
            assert [e["code"] for e in errors_in(await run_turn(client, spoken=False))] == [
                "tts_unavailable"
            ]
            assert_completed(await run_turn(client, spoken=False))
        # A different stage failing does not add to another's count either.
        cloud.llm.fail_next(500, 2)
        await run_turn(client, spoken=False)
        cloud.tts.fail_next(500, 2)
        await run_turn(client, spoken=False)
        assert server.session_count == 1
        cloud.tts.fail_next(500, 2)  # the second tts failure in a row
        await run_turn(client, spoken=False)
        await _ended(client, server)
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("stage", "status", "code", "words"),
    [
        ("tts", 401, None, "API key"),
        ("llm", 429, "insufficient_quota", "quota"),
        ("stt", 403, None, "API key"),
    ],
)
async def test_auth_or_quota_errors_end_the_session_at_once(
    leak_check, cloud, server_factory, stage, status, code, words
):
    server = await server_factory(providers=cloud.providers, **FAST)
    cloud.fake(stage).fail_next(status, -1, code=code)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("callcenter")
        if stage == "stt":
            await client.say(speech_48k(SPOKEN))
        else:
            client.send({"type": "text_input", "text": "Hello?"})
        events = await _ended(client, server)
        errors = errors_in(events)
        assert [e["code"] for e in errors][-1] == "provider_unavailable"
        assert len(errors) == 2 and errors[0]["stage"] == stage
        assert words in errors[-1]["message"] and KEY not in str(events)
        # Not retried: a wrong key stays wrong (one request, not two).
        assert len(cloud.fake(stage).requests) == 1
    finally:
        await client.close()


# The retry rule (turn.py): at most one retry, only for retryable failures,
# only before the person saw or heard anything of the reply. The fakes'
# request counts show what was actually sent.
RETRY_CASES = [
    # stage, status, how many fail, requests expected, error code (None: the turn completes)
    ("llm", 503, 1, 2, None),  # one retry rescues the turn
    ("llm", 429, 1, 2, None),  # rate limited: retried after Retry-After
    ("llm", 503, 2, 2, "llm_unavailable"),  # never a second retry
    ("llm", 400, 1, 1, "llm_invalid"),  # a bad request is not retried
    ("tts", 500, 1, 2, None),
    ("tts", 404, 1, 1, "tts_invalid"),  # e.g. an unknown voice: not retried
]


@pytest.mark.parametrize(
    ("stage", "status", "fails", "sent", "code"),
    RETRY_CASES,
    ids=[f"{c[0]}-{c[1]}x{c[2]}" for c in RETRY_CASES],
)
async def test_retry_rule_in_request_counts(
    cloud, server_factory, stage, status, fails, sent, code
):
    server = await server_factory(providers=cloud.providers, **FAST)
    fake = cloud.fake(stage)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        fake.fail_next(status, fails, retry_after="0.2" if status == 429 else None)
        before = len(fake.requests)
        events = await run_turn(client, spoken=False)
        assert len(fake.requests) - before == sent
        if code is None:
            assert_completed(events)
        else:
            assert [e["code"] for e in errors_in(events)] == [code]
    finally:
        await client.close()


async def test_no_retry_once_the_person_heard_the_reply(cloud, server_factory):
    # Two sentences, the second written ~1 s after the first: the first is
    # already playing when the voice service starts failing. Retrying now
    # would stall or repeat audio mid-reply, so the person gets one error.
    cloud.llm.knobs.reply = "First sentence here. Second sentence follows a bit later."
    cloud.llm.knobs.chunk_delay_s = 0.15
    server = await server_factory(providers=cloud.providers, **FAST)
    client = VoiceClient(server.base_url)
    try:
        await client.connect("receptionist")
        before = len(cloud.tts.requests)
        since = len(client.events)
        client.send({"type": "text_input", "text": "Tell me"})
        await client.wait_for("status_update", since=since, status="speaking", timeout=10)
        assert len(cloud.tts.requests) - before == 1  # the second is not written yet
        cloud.tts.fail_next(500, 5)
        await client.wait_for("status_update", since=since, status="idle", timeout=20)
        errors = errors_in(client.events[since:])
        assert [e["code"] for e in errors] == ["tts_unavailable"]
        assert len(cloud.tts.requests) - before == 2  # the first sentence, one failed try
    finally:
        await client.close()
