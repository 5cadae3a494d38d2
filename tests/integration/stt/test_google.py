"""Google speech:recognize: the JSON request, phrase hints, locales and the one-minute limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.google import GoogleSpeechToText
from tests.fakes.google_stt import FakeGoogleSpeech
from tests.fakes.speech_upload import tone


@pytest.fixture
async def provider(google_fake: FakeGoogleSpeech) -> AsyncIterator[GoogleSpeechToText]:
    stt = GoogleSpeechToText(
        api_key=Secret(google_fake.api_key),
        base_url=google_fake.base_url,
        language="en",
        wake_name="OpenClaw",
    )
    yield stt
    await stt.aclose()


async def test_the_request_carries_linear16_locale_and_phrase_hints(
    google_fake: FakeGoogleSpeech, provider: GoogleSpeechToText
) -> None:
    request = TranscriptionRequest(tone(), language="de", vocabulary=("Zorblax", "OPENCLAW"))
    transcript = await provider.transcribe(request)
    assert transcript.language == "de"
    assert transcript.extra == {"request_id": "1001"}
    config = google_fake.bodies[0]["config"]
    assert config["encoding"] == "LINEAR16"
    assert config["sampleRateHertz"] == 16_000
    assert config["languageCode"] == "de-DE"
    assert config["speechContexts"] == [{"phrases": ["OpenClaw", "Zorblax"]}]
    assert google_fake.requests[0].query == {"key": google_fake.api_key}


async def test_a_missing_key_is_auth(google_fake: FakeGoogleSpeech) -> None:
    stt = GoogleSpeechToText(api_key=Secret(""), base_url=google_fake.base_url, language="en")
    try:
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(TranscriptionRequest(tone()))
    finally:
        await stt.aclose()
    assert caught.value.kind is ErrorKind.AUTH
    assert caught.value.status == 403


async def test_over_a_minute_is_refused_without_a_request(
    google_fake: FakeGoogleSpeech, provider: GoogleSpeechToText
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.transcribe(TranscriptionRequest(tone(61.0)))
    assert caught.value.kind is ErrorKind.INPUT_TOO_LONG
    assert "60 s limit" in caught.value.detail
    assert google_fake.requests == []
