"""Azure short-audio recognition: query, headers, and every RecognitionStatus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.secret import Secret
from openclaw_voice.stt.azure import AzureSpeechToText
from openclaw_voice.stt.base import TranscriptionRequest
from tests.fakes.azure_stt import FakeAzureSpeech
from tests.fakes.speech_upload import tone


@pytest.fixture
async def provider(azure_fake: FakeAzureSpeech) -> AsyncIterator[AzureSpeechToText]:
    stt = AzureSpeechToText(
        api_key=Secret(azure_fake.api_key), base_url=azure_fake.base_url, language="en"
    )
    yield stt
    await stt.aclose()


async def test_the_request_names_locale_detailed_format_and_wav_content_type(
    azure_fake: FakeAzureSpeech, provider: AzureSpeechToText
) -> None:
    transcript = await provider.transcribe(TranscriptionRequest(tone(), language="fr"))
    assert transcript.language == "fr"
    assert azure_fake.queries == [{"language": "fr-FR", "format": "detailed"}]
    headers = azure_fake.requests[0].headers
    assert headers["Content-Type"] == "audio/wav; codecs=audio/pcm; samplerate=16000"
    assert headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("NoMatch", ErrorKind.EMPTY_RESULT),
        ("InitialSilenceTimeout", ErrorKind.EMPTY_RESULT),
        ("BabbleTimeout", ErrorKind.EMPTY_RESULT),
        ("Error", ErrorKind.UNAVAILABLE),
        ("SomethingNew", ErrorKind.BAD_RESPONSE),
    ],
)
async def test_each_recognition_status_maps_to_a_kind(
    azure_fake: FakeAzureSpeech, provider: AzureSpeechToText, status: str, kind: ErrorKind
) -> None:
    azure_fake.recognition_status = status
    with pytest.raises(ProviderError) as caught:
        await provider.transcribe(TranscriptionRequest(tone()))
    assert caught.value.kind is kind
    assert status in caught.value.detail or kind is ErrorKind.UNAVAILABLE


async def test_over_a_minute_is_refused_without_a_request(
    azure_fake: FakeAzureSpeech, provider: AzureSpeechToText
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.transcribe(TranscriptionRequest(tone(60.5)))
    assert caught.value.kind is ErrorKind.INPUT_TOO_LONG
    assert azure_fake.requests == []
