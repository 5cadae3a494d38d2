"""ElevenLabs speech-to-text: the form the elevenlabs SDK sends and how answers are read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.elevenlabs import ElevenLabsSpeechToText
from tests.fakes.elevenlabs_stt import FakeElevenLabsSpeechToText
from tests.fakes.speech_upload import tone


@pytest.fixture
async def provider(
    elevenlabs_fake: FakeElevenLabsSpeechToText,
) -> AsyncIterator[ElevenLabsSpeechToText]:
    stt = ElevenLabsSpeechToText(
        api_key=Secret(elevenlabs_fake.api_key),
        base_url=f"{elevenlabs_fake.base_url}/",
        model="scribe_v1",
        language="en",
    )
    yield stt
    await stt.aclose()


async def test_the_form_names_model_language_and_no_audio_event_tags(
    elevenlabs_fake: FakeElevenLabsSpeechToText, provider: ElevenLabsSpeechToText
) -> None:
    elevenlabs_fake.language_code = "spa"
    transcript = await provider.transcribe(TranscriptionRequest(tone(), language="es"))
    assert transcript.language == "es"
    assert transcript.extra == {"language_probability": 0.98}
    form = elevenlabs_fake.forms[0]
    assert form["model_id"] == "scribe_v1"
    assert form["language_code"] == "es"
    assert form["tag_audio_events"] == "false"
    assert elevenlabs_fake.requests[0].path == "/v1/speech-to-text"


async def test_an_unknown_model_is_bad_request(
    elevenlabs_fake: FakeElevenLabsSpeechToText, provider: ElevenLabsSpeechToText
) -> None:
    provider.model = "scribe_v9"
    with pytest.raises(ProviderError) as caught:
        await provider.transcribe(TranscriptionRequest(tone()))
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert "Unknown model scribe_v9" in caught.value.detail
