"""OpenAISTT through the real openai SDK against the loopback OpenAI fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import openai
import pytest

from media_server.providers.openai_stt import OpenAISTT
from media_server.types import ProviderError, Utterance
from tests.fakes.mp3_fixture import tone_pcm
from tests.fakes.openai_fake import OpenAIFake, start_openai_fake
from tests.fakes.providers import provider_factory

KEY = "sk-test-stt-0123456789abcdef"


def speech(seconds: float = 1.0, peak_dbfs: float = -12.0) -> Utterance:
    return Utterance(tone_pcm(seconds, 16000), sample_rate=16000, peak_dbfs=peak_dbfs)


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await start_openai_fake(api_key=KEY)
    yield server
    await server.close()


@pytest.fixture
async def make_stt(fake: OpenAIFake) -> AsyncIterator[Callable[..., OpenAISTT]]:
    async with provider_factory(OpenAISTT, api_key=KEY, base_url=fake.base_url) as make:
        yield make


async def test_whisper_sends_wav_and_asks_verbose_json(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.knobs.transcript = "I'd like to book a table."
    transcript = await make_stt().transcribe(speech(1.0))

    assert transcript.text == "I'd like to book a table."
    assert transcript.language == "english"
    [req] = fake.requests
    assert req.path == "/v1/audio/transcriptions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.form["model"] == "whisper-1"
    assert req.form["response_format"] == "verbose_json"
    assert "language" not in req.form
    upload = req.files["file"]
    assert upload.filename is not None and upload.filename.endswith(".wav")
    params = upload.wav_params
    assert params is not None
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
    assert params.nframes == 16000


async def test_language_hint_is_sent(fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]) -> None:
    await make_stt(language="de").transcribe(speech())
    assert fake.requests[0].form["language"] == "de"


@pytest.mark.parametrize("model", ["gpt-4o-transcribe", "gpt-4o-mini-transcribe"])
async def test_gpt4o_transcribe_models_ask_plain_json(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT], model: str
) -> None:
    transcript = await make_stt(model=model).transcribe(speech())
    assert transcript.text == fake.knobs.transcript
    [req] = fake.requests  # no verbose_json attempt, no fallback request
    assert req.form["response_format"] == "json"
    assert req.form["model"] == model


async def test_drops_segments_with_high_no_speech_prob(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.knobs.segments = [
        {"text": " Book a room for Friday.", "no_speech_prob": 0.05},
        {"text": " Thank you for watching!", "no_speech_prob": 0.93},
    ]
    transcript = await make_stt().transcribe(speech())
    assert transcript.text == "Book a room for Friday."


async def test_all_segments_silent_gives_empty_text(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.knobs.segments = [{"text": " you", "no_speech_prob": 0.8}]
    assert (await make_stt().transcribe(speech())).text == ""


async def test_no_speech_threshold_is_configurable(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.knobs.segments = [{"text": " Yes please.", "no_speech_prob": 0.7}]
    assert (await make_stt(no_speech_threshold=0.9).transcribe(speech())).text == "Yes please."
    assert (await make_stt(no_speech_threshold=0.6).transcribe(speech())).text == ""


@pytest.mark.parametrize(
    ("utterance", "why"),
    [
        (speech(0.2, -12.0), "too short"),
        (speech(1.0, -60.0), "too quiet"),
        (Utterance(b"", peak_dbfs=-10.0), "empty"),
    ],
)
async def test_short_or_quiet_utterance_makes_no_request(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT], utterance: Utterance, why: str
) -> None:
    transcript = await make_stt().transcribe(utterance)
    assert transcript.text == "", why
    assert fake.requests == [], why


async def test_guard_thresholds_are_configurable(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    stt = make_stt(min_duration_s=0.1, min_peak_dbfs=-70.0)
    assert (await stt.transcribe(speech(0.2, -60.0))).text == fake.knobs.transcript
    assert len(fake.requests) == 1


async def test_server_refusing_verbose_json_falls_back_once_and_remembers(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.knobs.reject_verbose_json = True
    stt = make_stt()
    assert (await stt.transcribe(speech())).text == fake.knobs.transcript
    assert [r.form["response_format"] for r in fake.requests] == ["verbose_json", "json"]
    assert (await stt.transcribe(speech())).text == fake.knobs.transcript
    assert [r.form["response_format"] for r in fake.requests][2:] == ["json"]


async def test_fallback_is_tried_only_once_when_json_fails_too(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.fail_next(400, count=-1)
    stt = make_stt()
    with pytest.raises(ProviderError) as first:
        await stt.transcribe(speech())
    assert first.value.kind == "invalid"
    assert len(fake.requests) == 2  # verbose_json, then json
    with pytest.raises(ProviderError):
        await stt.transcribe(speech())
    assert len(fake.requests) == 3  # no second fallback
    assert fake.requests[2].form["response_format"] == "verbose_json"  # 400 was not the format


async def test_unparseable_body_is_bad_output(
    fake: OpenAIFake, make_stt: Callable[..., OpenAISTT]
) -> None:
    fake.knobs.body = b"<html>gateway says hi</html>"
    fake.knobs.content_type = "text/html"
    with pytest.raises(ProviderError) as info:
        await make_stt(model="gpt-4o-transcribe").transcribe(speech())
    assert info.value.kind == "bad_output"


async def test_fake_speaks_text_format_and_lists_models(fake: OpenAIFake) -> None:
    # The fake's other wire formats, used elsewhere in the suite.
    async with openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0) as client:
        text = await client.audio.transcriptions.create(
            file=("a.wav", b"RIFF....WAVE", "audio/wav"), model="whisper-1", response_format="text"
        )
        assert text.strip() == fake.knobs.transcript
        models = await client.models.list()
        assert "whisper-1" in [m.id for m in models.data]
