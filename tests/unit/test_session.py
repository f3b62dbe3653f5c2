"""VoiceSession without media: fake engines, a fake ``events`` channel, and
PCM and messages fed straight into its callbacks.

The session policy of tests/integration (the status a page sees, turns from
speech and text, barge-in, the error budget, end_session, ping) in well
under a second a test. The session still builds a real RTCPeerConnection,
never connected: run these inside a loopback-only network namespace
(``unshare -n sh -c 'ip link set lo up && uv run pytest ...'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from media_server.agents import BUILTIN_AGENTS
from media_server.metrics import Metrics
from media_server.providers.base import Providers
from media_server.providers.fallback import EngineChain
from media_server.session import VoiceSession
from media_server.types import ProviderError
from tests.audio_fixtures import silence, speech_like
from tests.conftest import make_settings
from tests.fakes.engines import FakeLLM, FakeSTT, FakeTTS, fail, fake_providers
from tests.fakes.pipeline import Playback, Sent, wait_until

AGENT = BUILTIN_AGENTS["receptionist"]
LONG_REPLY = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 6))
SHORT_REPLY = "Sure, go ahead."
FRAME_S = 0.02
FRAME_BYTES = 640  # 20 ms at 16 kHz, s16le mono


class FakeChannel:
    """The ``events`` data channel as the session uses it."""

    def __init__(self, label: str = "events") -> None:
        self.label = label
        self.readyState = "open"
        self.bufferedAmount = 0
        self.sent = Sent()
        self.handlers: dict[str, Callable[..., Any]] = {}

    def send(self, message: str) -> None:
        self.sent(message)

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self.handlers[event] = handler

    def message(self, message: dict[str, Any] | str) -> None:
        """The page sends a message."""
        raw = message if isinstance(message, str) else json.dumps(message)
        self.handlers["message"](raw)


@dataclass
class Call:
    """One session with a page attached, and a mic to speak into it."""

    session: VoiceSession
    channel: FakeChannel
    metrics: Metrics
    now: float = 0.0

    @property
    def sent(self) -> Sent:
        return self.channel.sent

    def say(self, pcm: bytes, *, until: Callable[[], bool] | None = None) -> float:
        """Feed 16 kHz PCM 20 ms at a time, as the inbound track does; stop
        early once ``until()`` holds. The seconds fed."""
        fed = 0.0
        for start in range(0, len(pcm), FRAME_BYTES):
            self.now += FRAME_S
            fed += FRAME_S
            self.session._on_pcm(pcm[start : start + FRAME_BYTES], self.now)
            if until is not None and until():
                break
        return fed

    async def say_live(self, pcm: bytes) -> None:
        """``say``, letting the loop run between frames as it does between
        packets: a transcript asked for at a pause comes back in time."""
        for start in range(0, len(pcm), FRAME_BYTES):
            self.say(pcm[start : start + FRAME_BYTES])
            await asyncio.sleep(0)

    def text(self, text: str) -> None:
        self.channel.message({"type": "text_input", "text": text})

    def ended(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "voice_agent_sessions_ended_total", {"reason": reason}
        )
        return value or 0.0


def assert_status_never_repeats(sent: Sent) -> None:
    statuses = sent.statuses()
    assert all(a != b for a, b in itertools.pairwise(statuses)), statuses


def others() -> set[asyncio.Task[Any]]:
    """The tasks running, but for this one."""
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


@pytest.fixture
async def calls() -> AsyncIterator[Callable[..., Call]]:
    """Opens sessions (their page attached, their speaker played in real
    time); closes each and checks that it leaves no task behind."""
    before = others()
    opened: list[tuple[Call, Playback]] = []

    def open_call(providers: Providers | None = None, **settings: Any) -> Call:
        metrics = Metrics()
        session = VoiceSession(
            session_id="s-test",
            agent=AGENT,
            # The synthetic voice here is for webrtcvad; Silero hears people
            # (its own tests: test_vad.py; the WebRTC runs use espeak speech).
            # No echo comes back here, and the policy is timed to the frame:
            # the echo guard has its own tests (test_echo_guard.py).
            settings=make_settings(
                **{"vad_provider": "webrtcvad", "echo_guard": "off", **settings}
            ),
            providers=providers or fake_providers(llm=FakeLLM(SHORT_REPLY)),
            metrics=metrics,
        )
        channel = FakeChannel()
        session.transport._on_datachannel(channel)
        playback = Playback(session.speaker, only_audio=False).start()
        call = Call(session, channel, metrics, now=time.monotonic())
        opened.append((call, playback))
        return call

    yield open_call
    for call, playback in opened:
        await call.session.close()
        await asyncio.wait_for(playback.task, 1.0)  # it ends when the speaker stops
        assert_status_never_repeats(call.sent)
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: others() <= before, timeout=1.0)
    assert others() <= before, f"tasks left behind: {others() - before}"


# ---- the page attaches ---------------------------------------------------------------


async def test_the_page_hears_who_it_talks_to_and_the_status(calls) -> None:
    call = calls()
    hello, status = call.sent.events
    assert hello == {
        "type": "connection_established",
        "session_id": "s-test",
        "agent": "Receptionist",
        "agent_id": "receptionist",
        "providers": {"stt": "fake", "llm": "fake", "tts": "fake"},
    }
    assert status == {"type": "status_update", "status": "idle"}
    # Another channel, or the same label again, is not the page's events channel.
    for other in (FakeChannel("chat"), FakeChannel()):
        call.session.transport._on_datachannel(other)
        assert other.sent.raw == [] and other.handlers == {}
    await call.session.close()


async def test_ping_gets_pong_and_a_bad_message_one_error(calls) -> None:
    call = calls()
    call.channel.message({"type": "ping"})
    call.channel.message("not json")
    call.channel.message({"type": "ping"})
    assert call.sent.names()[2:] == ["pong", "error", "pong"]
    assert call.sent.of("error")[0]["code"] == "invalid_message"
    await call.session.close()


# ---- turns ---------------------------------------------------------------------------------


async def test_text_turn_statuses_in_order(calls) -> None:
    call = calls(fake_providers(llm=FakeLLM(SHORT_REPLY), tts=FakeTTS(audio_ms=60)))
    call.text("Can you help me?")
    assert call.session.status == "processing"  # at once, before any engine answers
    await call.sent.wait_for("turn_metrics")
    await wait_until(lambda: call.session.status == "idle")

    assert call.sent.statuses() == ["idle", "processing", "generating_audio", "speaking", "idle"]
    names = call.sent.names()
    assert names.index("status:processing") < names.index("transcription")
    assert names.index("status:speaking") < names.index("turn_metrics")
    assert names[-1] == "status:idle"
    assert call.sent.of("llm_response", is_final=True)[0]["text"] == SHORT_REPLY
    assert_status_never_repeats(call.sent)
    await call.session.close()


async def test_speech_is_listened_to_then_answered(calls) -> None:
    stt = FakeSTT("I would like an appointment", streaming=True)
    call = calls(fake_providers(stt=stt, llm=FakeLLM(SHORT_REPLY), tts=FakeTTS(audio_ms=60)))
    call.say(silence(0.3))
    assert call.sent.statuses() == ["idle"]
    call.say(speech_like(0.6))
    assert call.session.status == "listening"
    await call.say_live(silence(1.0))  # a finished sentence: the turn ends
    transcript = await call.sent.wait_for("transcription", is_final=True)
    assert transcript["text"] == "I would like an appointment"
    await call.sent.wait_for("turn_metrics")
    await wait_until(lambda: call.session.status == "idle")

    assert call.sent.statuses() == [
        "idle",
        "listening",
        "processing",
        "generating_audio",
        "speaking",
        "idle",
    ]
    # Decoded while spoken: the stream got the turn's audio and was finished.
    [stream] = stt.streams
    assert stream.finished and len(stream.pcm) >= len(speech_like(0.6))
    assert stt.utterances == []
    await call.session.close()


async def _speaking(call: Call) -> None:
    call.text("Tell me everything")
    await wait_until(lambda: call.session.status == "speaking")
    await asyncio.sleep(0.1)  # the person hears a bit of it


async def test_talking_over_the_agent_holds_it_then_interrupts_it(calls) -> None:
    llm = FakeLLM([LONG_REPLY, SHORT_REPLY])
    tts = FakeTTS(audio_ms=lambda text: 60 if text == SHORT_REPLY else 1000)
    call = calls(
        fake_providers(FakeSTT("Wait, a question"), llm, tts),
        BARGE_IN_MIN_MS=200,
        BARGE_IN_CONFIRM_MS=800,
    )
    await _speaking(call)
    since = len(call.sent.raw)
    speaker = call.session.speaker

    def cut() -> bool:
        return bool(call.sent.of("llm_response", interrupted=True))

    speech = speech_like(1.0)
    # At BARGE_IN_MIN_MS of speech the agent's audio holds, not a frame before
    # or after (webrtcvad calls every frame of speech_like voiced)...
    fed = call.say(speech, until=lambda: speaker.held)
    assert round(fed * 1000) == 200 and not cut()
    played = speaker.played_samples
    await asyncio.sleep(0.2)
    assert speaker.played_samples == played  # nothing more is heard
    # ...and at BARGE_IN_CONFIRM_MS it is an interruption.
    fed += call.say(speech[int(fed * 32000) :], until=cut)
    assert cut(), "a second of speech over the agent did not interrupt it"
    assert round(fed * 1000) == 800, fed
    [interrupted] = call.sent.of("llm_response", interrupted=True)
    assert interrupted["reason"] == "barge_in" and interrupted["turn_id"] == 1
    assert call.session.status == "listening"
    assert call.session.speaker.queued_samples == 0
    assert call.sent.of("turn_metrics", turn_id=1)[0]["interrupted"] is True

    await call.say_live(speech_like(0.3) + silence(1.0))  # the person finishes: their turn
    await call.sent.wait_for("turn_metrics", turn_id=2)
    await wait_until(lambda: call.session.status == "idle")
    assert call.sent.statuses()[-6:] == [
        "speaking",
        "listening",
        "processing",
        "generating_audio",
        "speaking",
        "idle",
    ]
    assert call.sent.of("transcription", turn_id=2)[0]["text"] == "Wait, a question"
    # The model's next request has only what was heard of the cut reply.
    assistant = [m.content for m in llm.messages[1] if m.role == "assistant"]
    assert assistant == [interrupted["text"]] and interrupted["text"] != LONG_REPLY
    assert call.sent.names()[since:].count("status:listening") == 1
    await call.session.close()


async def test_a_backchannel_holds_the_agent_and_it_goes_on_without_losing_a_word(calls) -> None:
    llm = FakeLLM([SHORT_REPLY + " " + LONG_REPLY])
    call = calls(
        fake_providers(FakeSTT(), llm, FakeTTS(audio_ms=600)),
        BARGE_IN_MIN_MS=200,
        BARGE_IN_CONFIRM_MS=800,
    )
    await _speaking(call)
    speaker = call.session.speaker
    call.say(speech_like(0.4))  # "mm-hmm"
    assert speaker.held
    played = speaker.played_samples
    await asyncio.sleep(0.1)
    assert speaker.played_samples == played
    call.say(silence(0.3))  # they stopped short of an interruption
    assert not speaker.held
    await call.sent.wait_for("turn_metrics", turn_id=1, timeout=30)
    assert call.sent.of("llm_response", interrupted=True) == []
    assert "interrupted" not in call.sent.of("turn_metrics", turn_id=1)[0]
    # Every word was played and is in the history: none lost to the hold.
    history = call.session.history.messages("")
    assert history[-1].content == SHORT_REPLY + " " + LONG_REPLY
    await call.session.close()


async def test_speech_over_the_agent_shorter_than_barge_in_min_ms_is_ignored(calls) -> None:
    stt = FakeSTT()
    providers = fake_providers(stt, FakeLLM(LONG_REPLY), FakeTTS(audio_ms=1000))
    call = calls(providers, BARGE_IN_MIN_MS=600)
    await _speaking(call)
    call.say(speech_like(0.3) + silence(1.0))  # a backchannel, a cough
    assert call.sent.of("llm_response", interrupted=True) == []
    assert call.session.status == "speaking" and call.session.conversation.busy
    assert stt.calls == []  # not a turn either
    await call.session.close()


async def test_interrupt_message_stops_the_reply(calls) -> None:
    providers = fake_providers(llm=FakeLLM(LONG_REPLY), tts=FakeTTS(audio_ms=1000))
    call = calls(providers)
    await _speaking(call)
    call.channel.message({"type": "interrupt"})
    [cut] = call.sent.of("llm_response", interrupted=True)
    assert cut["reason"] == "client"
    assert call.session.status == "idle" and call.sent.statuses()[-1] == "idle"
    assert call.session.speaker.queued_samples == 0
    call.channel.message({"type": "interrupt"})  # nothing to stop: nothing said
    assert len(call.sent.of("llm_response", interrupted=True)) == 1
    await call.session.close()


# ---- the error budget --------------------------------------------------------------------


async def test_consecutive_failed_turns_end_the_session_and_say_why(calls) -> None:
    down = ProviderError("llm", "unavailable", "fake llm: 503", retry_after=0.01)
    llm = FakeLLM(SHORT_REPLY, faults=fail(down))
    call = calls(fake_providers(llm=llm), PROVIDER_ERROR_LIMIT=2)

    call.text("Hello?")
    await call.sent.wait_for("turn_metrics", turn_id=1)
    await wait_until(lambda: call.session.status == "idle")
    assert [e["code"] for e in call.sent.of("error")] == ["llm_unavailable"]
    await asyncio.sleep(0.05)
    assert call.sent.of("session_end") == [] and call.session.end_reason is None

    since = len(call.sent.raw)
    call.text("Hello again?")
    end = await call.sent.wait_for("session_end")
    assert end["reason"] == "provider_unavailable"
    # The turn's own error, back to idle, then why the session ends, then the end.
    names = [e.get("code") or e.get("status") or e["type"] for e in call.sent.events[since:]]
    order = [names.index(n) for n in ("llm_unavailable", "idle", "provider_unavailable")]
    assert order == sorted(order) and names[-1] == "session_end", names
    final = call.sent.of("error", code="provider_unavailable")[0]
    assert final["stage"] == "llm" and final["retryable"] is False
    assert "language model" in final["message"] and "ended" in final["message"]
    assert len(llm.calls) == 4  # each turn: the request and its one retry

    await call.session.close()
    assert call.session.end_reason == "provider_unavailable"
    assert call.ended("provider_unavailable") == 1


async def test_a_rejected_key_ends_the_session_after_the_first_turn(calls) -> None:
    rejected = ProviderError("llm", "auth", "fake llm: 401", status=401)
    llm = FakeLLM(SHORT_REPLY, faults=fail(rejected))
    call = calls(fake_providers(llm=llm))
    call.text("Hello?")
    end = await call.sent.wait_for("session_end")
    assert end["reason"] == "provider_unavailable"
    codes = [e["code"] for e in call.sent.of("error")]
    assert codes == ["llm_auth", "provider_unavailable"]
    assert "API key" in call.sent.of("error")[-1]["message"]
    assert len(llm.calls) == 1  # a wrong key stays wrong: not retried
    await call.session.close()
    assert call.session.end_reason == "provider_unavailable"


async def test_a_voice_key_rejected_mid_call_hands_over_and_the_call_goes_on(calls) -> None:
    # An ElevenLabs 401 on the third turn used to end the call, though
    # another voice was there. Now the backup speaks that turn and the next.
    rejected = ProviderError("tts", "auth", "fake tts: 401", status=401)
    eleven = FakeTTS(audio_ms=60, faults=fail(rejected, on=range(3, 100)))
    eleven.name = "elevenlabs"
    backup = FakeTTS(audio_ms=60, frequency=220.0)
    backup.name = "espeak"
    tts = EngineChain("tts", [eleven, backup])
    # One piece a turn (an opener like "Sure," would be a piece of its own).
    call = calls(fake_providers(llm=FakeLLM("Go ahead, please."), tts=tts))
    for turn_id in range(1, 5):
        call.text(f"Question {turn_id}?")
        await call.sent.wait_for("turn_metrics", turn_id=turn_id)
        await wait_until(lambda: call.session.status == "idle")
    assert call.sent.of("error") == [] and call.sent.of("session_end") == []
    assert call.session.end_reason is None
    [notice] = call.sent.of("provider_fallback")  # once, though two turns fell back
    assert (notice["stage"], notice["from"], notice["to"]) == ("tts", "elevenlabs", "espeak")
    assert "backup voice" in notice["message"] and notice["providers"]["tts"] == "espeak"
    # The rejected key was asked once; every later piece went to the backup.
    assert len(eleven.calls) == 3 and len(backup.calls) == 2
    assert [c.request.voice for c in backup.calls] == [AGENT.espeak_voice] * 2
    counted = call.metrics.registry.get_sample_value(
        "voice_agent_provider_fallbacks_total",
        {"stage": "tts", "from": "elevenlabs", "to": "espeak"},
    )
    assert counted == 1.0
    await call.session.close()


async def test_a_call_ends_only_when_every_engine_of_the_chain_refuses(calls) -> None:
    refused = [
        FakeLLM(SHORT_REPLY, faults=fail(ProviderError("llm", "auth", "401"))) for _ in range(2)
    ]
    call = calls(fake_providers(llm=EngineChain("llm", refused)))
    call.text("Hello?")
    end = await call.sent.wait_for("session_end")
    assert end["reason"] == "provider_unavailable"
    assert [e["code"] for e in call.sent.of("error")] == ["llm_auth", "provider_unavailable"]
    assert [len(e.calls) for e in refused] == [1, 1]
    await call.session.close()


# ---- the end -------------------------------------------------------------------------------------


async def test_end_session_ends_it_once_and_frees_everything(calls) -> None:
    before = others()
    llm = FakeLLM(LONG_REPLY)
    call = calls(fake_providers(llm=llm, tts=FakeTTS(audio_ms=1000)))
    session = call.session
    await _speaking(call)  # a reply still being spoken when the page leaves
    call.channel.message({"type": "end_session"})
    end = await call.sent.wait_for("session_end")
    assert end["reason"] == "client_ended"

    await session.close()
    await session.close("closed")  # idempotent: the first reason stands
    assert session.end_reason == "client_ended"
    assert call.ended("client_ended") == 1 and call.ended("closed") == 0
    assert call.sent.names()[-1] == "session_end"  # nothing of the cut turn follows
    assert not session.conversation.busy
    assert session.speaker.readyState == "ended"
    assert session.transport.peer.pc.connectionState == "closed"
    # No task of the session is left: its turn, its close, the speaker's reader.
    await wait_until(lambda: others() <= before, timeout=1.0)

    # A closed session ignores the page and the mic.
    count = len(call.sent.raw)
    call.channel.message({"type": "ping"})
    call.text("Are you there?")
    call.say(speech_like(0.5) + silence(1.0))
    assert len(call.sent.raw) == count
    assert len(llm.calls) == 1


async def test_closing_as_a_turn_ends_gives_back_its_streaming_decoder(calls) -> None:
    # The page goes away at the moment the person stops speaking: the turn is
    # handed to the conversation and cut by close() before its task ran.
    stt = FakeSTT(streaming=True)
    call = calls(fake_providers(stt=stt))
    # No task runs while this is fed, so the words at the pause never come
    # back: the turn ends at the longest wait.
    call.say(speech_like(0.6) + silence(2.0))
    assert call.session.conversation.busy and len(stt.streams) == 1
    await call.session.close()
    [stream] = stt.streams
    assert stream.cancelled and stt.open_streams == 0
