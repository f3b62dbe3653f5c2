"""The in-process fake engines (tests/fakes/engines.py) do what they document."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from media_server.providers.base import (
    LanguageModel,
    Providers,
    SpeechToText,
    SpeechToTextStream,
    STTCapabilities,
    TextToSpeech,
    TTSCapabilities,
)
from media_server.types import ChatMessage, ProviderError, ReplyOptions, Utterance
from tests.fakes.engines import (
    DEFAULT_REPLY,
    FakeLLM,
    FakeSTT,
    FakeTTS,
    fail,
    fake_providers,
    hang,
    sine_pcm,
    tokens_of,
)

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi there")]
OPTIONS = ReplyOptions()
UTTERANCE = Utterance(b"\x01\x00" * 1600)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """A fast clock: every asyncio.sleep is recorded and takes no time."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def fast_sleep(seconds: float, result: Any = None) -> Any:
        asked.append(seconds)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", fast_sleep)
    yield asked


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


async def collect_until_error(stream: AsyncIterator[Any]) -> tuple[list[Any], BaseException]:
    items: list[Any] = []
    with pytest.raises(BaseException) as info:
        async for item in stream:
            items.append(item)
    return items, info.value


# ---- protocols ------------------------------------------------------------------------


async def test_fakes_satisfy_the_engine_protocols() -> None:
    stt, llm, tts = FakeSTT(streaming=True), FakeLLM(), FakeTTS()
    assert isinstance(stt, SpeechToText)
    assert isinstance(llm, LanguageModel)
    assert isinstance(tts, TextToSpeech)
    assert isinstance(stt.open_stream(), SpeechToTextStream)
    assert stt.capabilities == STTCapabilities(streaming=True)
    assert FakeSTT().capabilities == STTCapabilities(streaming=False)
    assert tts.capabilities == TTSCapabilities(streaming=True, encoding="pcm", sample_rate=16000)
    assert (stt.name, llm.name, tts.name) == ("fake", "fake", "fake")


async def test_fake_providers_fills_in_defaults_and_warms_and_closes() -> None:
    llm = FakeLLM("Hi.")
    providers = fake_providers(llm=llm)
    assert isinstance(providers, Providers)
    assert providers.llm is llm
    assert isinstance(providers.stt, FakeSTT) and isinstance(providers.tts, FakeTTS)
    assert (providers.names.stt, providers.names.llm, providers.names.tts) == ("fake",) * 3
    for engine in (providers.stt, providers.llm, providers.tts):
        await engine.warm_up()
    await providers.close()
    assert all(e.warm_ups == 1 and e.closed for e in (providers.stt, llm, providers.tts))
    with pytest.raises(ProviderError) as info:
        await collect(llm.stream_reply(MESSAGES, OPTIONS))
    assert (info.value.stage, info.value.kind) == ("llm", "unavailable")


# ---- STT -------------------------------------------------------------------------------


async def test_stt_answers_one_fixed_transcript_and_records_utterances() -> None:
    stt = FakeSTT("book a table")
    for _ in range(3):
        assert (await stt.transcribe(UTTERANCE)).text == "book a table"
    assert stt.utterances == [UTTERANCE] * 3
    assert [c.outcome for c in stt.calls] == ["done"] * 3


async def test_stt_answers_scripted_transcripts_in_order_and_no_more() -> None:
    stt = FakeSTT(["one", "two"])
    assert [(await stt.transcribe(UTTERANCE)).text for _ in range(2)] == ["one", "two"]
    with pytest.raises(AssertionError, match="only 2 transcripts"):
        await stt.transcribe(UTTERANCE)


async def test_stt_fails_on_the_kth_call_after_its_delay(sleeps: list[float]) -> None:
    error = ProviderError("stt", "unavailable", "boom")
    stt = FakeSTT(["a", "b", "c"], delay=0.3, faults=fail(error, on=2))
    assert (await stt.transcribe(UTTERANCE)).text == "a"
    with pytest.raises(ProviderError) as info:
        await stt.transcribe(UTTERANCE)
    assert info.value is error
    assert (await stt.transcribe(UTTERANCE)).text == "c"  # one transcript per call
    assert sleeps == [0.3, 0.3, 0.3]
    assert [c.outcome for c in stt.calls] == ["done", "failed", "done"]


async def test_stt_stream_records_pcm_and_finishes_with_the_transcript() -> None:
    stt = FakeSTT(["streamed", "batch"], streaming=True, max_streams=1)
    stream = stt.open_stream()
    assert stream is not None
    assert stt.open_stream() is None  # the one decoder is busy: fall back to batch
    stream.feed(b"\x01\x00")
    stream.feed(b"\x02\x00")
    assert (await stream.finish()).text == "streamed"
    assert stream.pcm == b"\x01\x00\x02\x00" and stream.finished and not stream.cancelled
    stream.feed(b"late")
    assert stream.late_feeds == 1
    with pytest.raises(ProviderError):
        await stream.finish()
    assert (await stt.transcribe(UTTERANCE)).text == "batch"
    assert stt.streams == [stream] and stt.utterances == [UTTERANCE]


async def test_stt_stream_cancel_is_recorded_and_frees_the_slot() -> None:
    stt = FakeSTT(streaming=True, max_streams=1)
    stream = stt.open_stream()
    assert stream is not None
    stream.cancel()
    assert stream.cancelled and stream.call.outcome == "cancelled"
    assert stt.open_stream() is not None
    assert FakeSTT().open_stream() is None  # not a streaming engine


async def test_stt_stream_fault_strikes_at_finish(sleeps: list[float]) -> None:
    error = ProviderError("stt", "timeout")
    stt = FakeSTT(streaming=True, delay=1.0, finish_delay=0.05, faults=fail(error))
    stream = stt.open_stream()
    assert stream is not None
    stream.feed(b"\x00\x00")
    with pytest.raises(ProviderError) as info:
        await stream.finish()
    assert info.value is error and sleeps == [0.05]


# ---- LLM -------------------------------------------------------------------------------


async def test_llm_streams_the_reply_as_tokens_and_records_the_request() -> None:
    llm = FakeLLM()
    tokens = await collect(llm.stream_reply(MESSAGES, OPTIONS))
    assert tokens == tokens_of(DEFAULT_REPLY) and len(tokens) > 1
    assert "".join(tokens) == DEFAULT_REPLY
    assert llm.messages == [tuple(MESSAGES)]
    assert llm.requests[0].options is OPTIONS
    assert (llm.calls[0].items, llm.calls[0].outcome) == (len(tokens), "done")


async def test_llm_replies_in_order_with_delays(sleeps: list[float]) -> None:
    llm = FakeLLM(["Hello there.", ""], delay=0.5, item_delay=0.02)
    assert await collect(llm.stream_reply(MESSAGES, OPTIONS)) == ["Hello", " there."]
    assert sleeps == [0.5, 0.02]
    assert await collect(llm.stream_reply(MESSAGES, OPTIONS)) == []  # empty, after its delay
    assert sleeps == [0.5, 0.02, 0.5]


async def test_llm_fails_after_n_tokens_on_every_call() -> None:
    error = ProviderError("llm", "unavailable", "stream cut")
    llm = FakeLLM("one two three four", faults=fail(error, after=2))
    for _ in range(2):
        tokens, raised = await collect_until_error(llm.stream_reply(MESSAGES, OPTIONS))
        assert tokens == ["one", " two"] and raised is error
    assert [(c.items, c.outcome) for c in llm.calls] == [(2, "failed")] * 2


async def test_llm_fault_after_the_last_token_strikes_at_the_end() -> None:
    error = ProviderError("llm", "bad_output")
    llm = FakeLLM("a b", faults=fail(error, after=9))
    tokens, raised = await collect_until_error(llm.stream_reply(MESSAGES, OPTIONS))
    assert tokens == ["a", " b"] and raised is error


async def test_llm_hang_never_answers_until_the_deadline() -> None:
    llm = FakeLLM(faults=hang(on=1))
    stream = llm.stream_reply(MESSAGES, OPTIONS)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(stream)
    assert llm.calls[0].outcome == "cancelled"
    assert await collect(llm.stream_reply(MESSAGES, OPTIONS)) == tokens_of(DEFAULT_REPLY)


async def test_llm_hang_is_visible_while_it_lasts() -> None:
    llm = FakeLLM("a b c", faults=hang(after=1))
    stream = llm.stream_reply(MESSAGES, OPTIONS)
    assert await anext(stream) == "a"
    task = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert llm.calls[0].outcome == "hanging" and not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert llm.calls[0].outcome == "cancelled"


async def test_delays_take_real_time_without_a_fast_clock() -> None:
    llm = FakeLLM("a b", delay=0.05, item_delay=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await collect(llm.stream_reply(MESSAGES, OPTIONS))
    assert loop.time() - start >= 0.09


# ---- TTS -------------------------------------------------------------------------------


async def test_tts_yields_the_tone_in_sample_aligned_chunks() -> None:
    tts = FakeTTS(audio_ms=110, chunk_ms=20)
    chunks = await collect(tts.synthesize("Hello there.", "v1"))
    assert [len(c.data) for c in chunks] == [640] * 5 + [320]
    assert {(c.encoding, c.sample_rate, c.channels) for c in chunks} == {("pcm", 16000, 1)}
    assert b"".join(c.data for c in chunks) == tts.audio_for("Hello there.") == sine_pcm(110)
    assert tts.texts == ["Hello there."] and tts.calls[0].request.voice == "v1"
    assert (tts.calls[0].items, tts.calls[0].outcome) == (6, "done")


async def test_tts_audio_length_can_follow_the_text_and_blank_text_is_silent() -> None:
    tts = FakeTTS(audio_ms=lambda text: 10 * len(text))
    assert len(b"".join(c.data for c in await collect(tts.synthesize("abcd", "")))) == 40 * 32
    assert await collect(tts.synthesize("  ", "")) == []
    assert tts.texts == ["abcd", "  "]


async def test_tts_fails_after_part_of_the_audio_on_the_kth_call(sleeps: list[float]) -> None:
    error = ProviderError("tts", "unavailable", "reset")
    tts = FakeTTS(audio_ms=100, delay=0.2, item_delay=0.01, faults=fail(error, on=2, after=2))
    assert len(await collect(tts.synthesize("First.", "v"))) == 5
    chunks, raised = await collect_until_error(tts.synthesize("Second.", "v"))
    assert len(chunks) == 2 and raised is error
    assert sleeps[-3:] == [0.2, 0.01, 0.01]  # the fault struck where chunk 3 would come
    assert [c.outcome for c in tts.calls] == ["done", "failed"]


async def test_tts_closed_early_is_recorded() -> None:
    tts = FakeTTS(audio_ms=200)
    stream = tts.synthesize("Long reply.", "v")
    await anext(stream)  # type: ignore[arg-type]
    await stream.aclose()  # type: ignore[attr-defined]
    assert (tts.calls[0].items, tts.calls[0].outcome) == (1, "closed")
