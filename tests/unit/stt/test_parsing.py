"""How each provider reads answers the happy-path fakes do not produce."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.secret import Secret
from openclaw_voice.stt.azure import AzureSpeechToText
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.google import GoogleSpeechToText
from openclaw_voice.stt.openai import OpenAISpeechToText
from tests.fakes.speech_upload import tone

KEY = Secret("key-0123456789")


@pytest.fixture
async def google() -> AsyncIterator[GoogleSpeechToText]:
    provider = GoogleSpeechToText(api_key=KEY, base_url="http://127.0.0.1:9", language="en")
    yield provider
    await provider.aclose()


@pytest.fixture
async def azure() -> AsyncIterator[AzureSpeechToText]:
    provider = AzureSpeechToText(api_key=KEY, base_url="http://127.0.0.1:9", language="en")
    yield provider
    await provider.aclose()


def test_google_joins_results_and_averages_set_confidences(google: GoogleSpeechToText) -> None:
    document = {
        "results": [
            {"alternatives": [{"transcript": "turn the ", "confidence": 0.9}]},
            {"alternatives": []},
            {"alternatives": [{"transcript": " lights on", "confidence": 0.7}]},
            {"alternatives": [{"transcript": "", "confidence": 0.0}], "languageCode": "en-gb"},
        ]
    }
    text, confidence, language = google._parse(document)
    assert text == "turn the lights on"
    assert confidence == pytest.approx(0.8)
    assert language == "en-gb"


def test_google_without_confidence_reports_none(google: GoogleSpeechToText) -> None:
    assert google._parse({"results": [{"alternatives": [{"transcript": "hi"}]}]}) == (
        "hi",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ({}, ErrorKind.EMPTY_RESULT),
        ({"results": []}, ErrorKind.EMPTY_RESULT),
        ({"results": "nope"}, ErrorKind.BAD_RESPONSE),
        ({"results": [{"alternatives": [{"transcript": 5}]}]}, ErrorKind.BAD_RESPONSE),
        ({"results": [{"alternatives": ["text"]}]}, ErrorKind.BAD_RESPONSE),
    ],
)
def test_google_bad_or_empty_documents(
    google: GoogleSpeechToText, document: dict[str, Any], kind: ErrorKind
) -> None:
    with pytest.raises(ProviderError) as caught:
        google._parse(document)
    assert caught.value.kind is kind


def test_azure_simple_format_has_no_confidence(azure: AzureSpeechToText) -> None:
    assert azure._parse({"RecognitionStatus": "Success", "DisplayText": " Hi  there. "}) == (
        "Hi there.",
        None,
    )


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ({"RecognitionStatus": "Success"}, ErrorKind.BAD_RESPONSE),
        ({"RecognitionStatus": "Success", "DisplayText": ""}, ErrorKind.EMPTY_RESULT),
        ({"RecognitionStatus": "Success", "NBest": [{"Display": 3}]}, ErrorKind.BAD_RESPONSE),
        ({}, ErrorKind.BAD_RESPONSE),
    ],
)
def test_azure_bad_or_empty_documents(
    azure: AzureSpeechToText, document: dict[str, Any], kind: ErrorKind
) -> None:
    with pytest.raises(ProviderError) as caught:
        azure._parse(document)
    assert caught.value.kind is kind


def test_azure_ignores_a_non_numeric_confidence(azure: AzureSpeechToText) -> None:
    document = {"RecognitionStatus": "Success", "NBest": [{"Display": "Hi", "Confidence": True}]}
    assert azure._parse(document) == ("Hi", None)


async def test_openai_rejects_unexpected_response_objects() -> None:
    provider = OpenAISpeechToText(api_key=KEY, base_url="http://127.0.0.1:9/v1", model="whisper-1")
    try:
        for parse in (provider._from_verbose, provider._from_json):
            with pytest.raises(ProviderError) as caught:
                parse("plain text")
            assert caught.value.kind is ErrorKind.BAD_RESPONSE
    finally:
        await provider.aclose()


async def test_openai_sends_no_prompt_to_diarizing_models() -> None:
    provider = OpenAISpeechToText(
        api_key=KEY,
        base_url="http://127.0.0.1:9/v1",
        model="gpt-4o-transcribe-diarize",
        wake_name="OpenClaw",
    )
    try:
        assert provider._prompt(TranscriptionRequest(tone())) is None
        provider.model = "gpt-4o-transcribe"
        assert provider._prompt(TranscriptionRequest(tone())) == "Names and terms: OpenClaw."
    finally:
        await provider.aclose()
