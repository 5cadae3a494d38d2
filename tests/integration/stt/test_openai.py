"""OpenAI transcriptions: the request the openai SDK sends, per model family, and limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.openai import MAX_UPLOAD_BYTES, OpenAISpeechToText
from tests.fakes.openai_transcriptions import FakeOpenAITranscriptions
from tests.fakes.speech_upload import tone

Make = Callable[..., OpenAISpeechToText]


@pytest.fixture
async def make(openai_fake: FakeOpenAITranscriptions) -> AsyncIterator[Make]:
    """Builds providers for the fake (model, language); closes them afterwards."""
    created: list[OpenAISpeechToText] = []

    def build(model: str, language: str | None = "en") -> OpenAISpeechToText:
        provider = OpenAISpeechToText(
            api_key=Secret(openai_fake.api_key),
            base_url=f"{openai_fake.base_url}/v1",
            model=model,
            language=language,
            wake_name="OpenClaw",
        )
        created.append(provider)
        return provider

    yield build
    for provider in created:
        await provider.aclose()


async def test_gpt4o_models_send_json_logprobs_language_and_a_vocabulary_prompt(
    openai_fake: FakeOpenAITranscriptions, make: Make
) -> None:
    provider = make("gpt-4o-mini-transcribe")
    request = TranscriptionRequest(tone(), vocabulary=("Zorblax", "openclaw", " "))
    transcript = await provider.transcribe(request)
    assert transcript.extra == {"model": "gpt-4o-mini-transcribe"}
    (form,) = openai_fake.forms
    assert form == {
        "model": "gpt-4o-mini-transcribe",
        "response_format": "json",
        "include[]": "logprobs",
        "language": "en",
        "prompt": "Names and terms: OpenClaw, Zorblax.",
    }
    headers = openai_fake.requests[0].headers
    assert headers["x-stainless-retry-count"] == "0"


async def test_whisper_uses_verbose_json_and_reports_the_detected_language(
    openai_fake: FakeOpenAITranscriptions, make: Make
) -> None:
    openai_fake.language_name = "german"
    provider = make("whisper-1", None)
    transcript = await provider.transcribe(TranscriptionRequest(tone(), language="de"))
    assert transcript.language == "de"
    assert openai_fake.forms[0]["response_format"] == "verbose_json"
    assert openai_fake.forms[0]["language"] == "de"
    assert "include[]" not in openai_fake.forms[0]


async def test_models_without_logprobs_give_no_confidence(
    openai_fake: FakeOpenAITranscriptions, make: Make
) -> None:
    provider = make("gpt-transcribe", None)
    transcript = await provider.transcribe(TranscriptionRequest(tone()))
    assert transcript.confidence is None
    assert transcript.language is None
    assert "include[]" not in openai_fake.forms[0]
    assert "language" not in openai_fake.forms[0]


async def test_a_request_the_api_refuses_is_bad_request_with_its_message(
    openai_fake: FakeOpenAITranscriptions, make: Make
) -> None:
    provider = make("whisper-2")
    with pytest.raises(ProviderError) as caught:
        await provider.transcribe(TranscriptionRequest(tone()))
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert caught.value.status == 400
    assert "Invalid model 'whisper-2'" in caught.value.detail


async def test_audio_over_the_25_mb_file_limit_is_refused_without_a_request(
    openai_fake: FakeOpenAITranscriptions, make: Make
) -> None:
    chunk = tone(1.0)
    repeats = MAX_UPLOAD_BYTES // len(chunk.data) + 1
    long_audio = type(chunk)(chunk.data * repeats, chunk.sample_rate)
    with pytest.raises(ProviderError) as caught:
        await make("whisper-1").transcribe(TranscriptionRequest(long_audio))
    assert caught.value.kind is ErrorKind.INPUT_TOO_LONG
    assert "25 MiB file limit" in caught.value.detail
    assert openai_fake.requests == []
