"""The speech fakes refuse what the real APIs refuse, so a wrong request fails a test."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from openclaw_voice.stt.common import wav_bytes
from tests.fakes.azure_stt import PATH as AZURE_PATH
from tests.fakes.azure_stt import FakeAzureSpeech
from tests.fakes.elevenlabs_stt import FakeElevenLabsSpeechToText
from tests.fakes.google_stt import FakeGoogleSpeech
from tests.fakes.openai_transcriptions import FakeOpenAITranscriptions
from tests.fakes.speech_upload import tone

WAV = wav_bytes(tone(0.2))
WAV_8K = wav_bytes(tone(0.2, sample_rate=8_000))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def form(fields: dict[str, str], audio: bytes | None = WAV, filename: str = "a.wav") -> Any:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        data.add_field(name, value)
    if audio is not None:
        data.add_field("file", audio, filename=filename, content_type="audio/wav")
    return data


async def status_and_body(response: aiohttp.ClientResponse) -> tuple[int, str]:
    return response.status, await response.text()


@dataclass(frozen=True)
class Upload:
    fields: dict[str, str]
    audio: bytes | None = WAV
    filename: str = "a.wav"


@pytest.mark.parametrize(
    ("upload", "status", "says"),
    [
        (Upload({"model": "whisper-1"}, None), 400, "'file' is a required property"),
        (Upload({}), 400, "model parameter"),
        (Upload({"model": "whisper-1"}, b"RIFF-not-really"), 400, "corrupted"),
        (Upload({"model": "whisper-1"}, WAV_8K), 400, "expected 16000 Hz"),
        (Upload({"model": "whisper-1"}, filename="a.exe"), 400, "Invalid file format"),
        (
            Upload({"model": "gpt-4o-transcribe", "response_format": "verbose_json"}),
            400,
            "not compatible",
        ),
        (Upload({"model": "whisper-1", "language": "en-US"}), 400, "ISO-639-1"),
        (Upload({"model": "whisper-1", "response_format": "text"}), 200, "hello there"),
    ],
)
async def test_openai_checks_the_form(
    openai_fake: FakeOpenAITranscriptions,
    http: aiohttp.ClientSession,
    upload: Upload,
    status: int,
    says: str,
) -> None:
    async with http.post(
        f"{openai_fake.base_url}/v1/audio/transcriptions",
        data=form(upload.fields, upload.audio, upload.filename),
        headers={"Authorization": f"Bearer {openai_fake.api_key}"},
    ) as response:
        got_status, body = await status_and_body(response)
    assert (got_status, says in body) == (status, True), body


async def test_openai_wants_a_bearer_key_and_a_multipart_body(
    openai_fake: FakeOpenAITranscriptions, http: aiohttp.ClientSession
) -> None:
    url = f"{openai_fake.base_url}/v1/audio/transcriptions"
    async with http.post(url, data=form({"model": "whisper-1"})) as response:
        assert response.status == 401
    headers = {"Authorization": f"Bearer {openai_fake.api_key}"}
    async with http.post(url, json={"model": "whisper-1"}, headers=headers) as response:
        assert await status_and_body(response) == (
            400,
            json.dumps(
                {
                    "error": {
                        "message": "Could not parse multipart form: expected multipart/form-data"
                        " with a boundary, got 'application/json'",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            ),
        )


@pytest.mark.parametrize(
    ("headers", "upload", "status"),
    [
        ({}, Upload({"model_id": "scribe_v1"}), 401),
        ({"xi-api-key": "wrong"}, Upload({"model_id": "scribe_v1"}), 401),
        (None, Upload({}), 422),
        (None, Upload({"model_id": "scribe_v1"}, None), 400),
        (None, Upload({"model_id": "scribe_v1"}, WAV_8K), 400),
        (None, Upload({"model_id": "scribe_v1", "language_code": "english"}), 400),
        (None, Upload({"model_id": "scribe_v1"}), 200),
    ],
)
async def test_elevenlabs_checks_key_model_and_audio(
    elevenlabs_fake: FakeElevenLabsSpeechToText,
    http: aiohttp.ClientSession,
    headers: dict[str, str] | None,
    upload: Upload,
    status: int,
) -> None:
    sent = {"xi-api-key": elevenlabs_fake.api_key} if headers is None else headers
    async with http.post(
        f"{elevenlabs_fake.base_url}/v1/speech-to-text",
        data=form(upload.fields, upload.audio),
        headers=sent,
    ) as response:
        assert response.status == status


def google_body(**config: object) -> dict[str, object]:
    base: dict[str, object] = {"encoding": "LINEAR16", "languageCode": "en-US"}
    return {"config": {**base, **config}, "audio": {"content": base64.b64encode(WAV).decode()}}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (google_body(languageCode=""), "language_code is required"),
        (google_body(encoding="WAV"), "config.encoding"),
        (google_body(sampleRateHertz=8000), "must match the WAV header"),
        (google_body(speechContexts={"phrases": "x"}), "speech_contexts"),
        ({"config": {"languageCode": "en-US"}}, "RecognitionAudio not set"),
        ({"config": {"languageCode": "en-US"}, "audio": {"content": "***"}}, "Base64"),
        ({"audio": {}}, "config is required"),
    ],
)
async def test_google_checks_the_recognition_request(
    google_fake: FakeGoogleSpeech, http: aiohttp.ClientSession, body: object, says: str
) -> None:
    async with http.post(
        f"{google_fake.base_url}/v1/speech:recognize",
        params={"key": google_fake.api_key},
        json=body,
    ) as response:
        status, text = await status_and_body(response)
    assert status == 400
    assert says in json.loads(text)["error"]["message"]


async def test_google_takes_raw_linear16_with_a_rate_and_refuses_it_without(
    google_fake: FakeGoogleSpeech, http: aiohttp.ClientSession
) -> None:
    url = f"{google_fake.base_url}/v1/speech:recognize"
    raw = base64.b64encode(tone(0.2).data).decode()
    body: dict[str, Any] = {"config": {"languageCode": "en-US"}, "audio": {"content": raw}}
    async with http.post(url, params={"key": google_fake.api_key}, json=body) as response:
        assert response.status == 400
    body["config"]["sampleRateHertz"] = 16_000
    async with http.post(url, params={"key": google_fake.api_key}, json=body) as response:
        assert response.status == 200
    async with http.post(url, params={"key": google_fake.api_key}, data=b"{}") as response:
        assert response.status == 400  # not declared as JSON


PCM_16K = "audio/wav; codecs=audio/pcm; samplerate=16000"


@pytest.mark.parametrize(
    ("query", "sent", "status"),
    [
        ({"format": "detailed"}, (PCM_16K, WAV), 400),
        ({"language": "en"}, (PCM_16K, WAV), 400),
        ({"language": "en-US", "format": "xml"}, (PCM_16K, WAV), 400),
        ({"language": "en-US"}, ("audio/mpeg", WAV), 400),
        ({"language": "en-US"}, (PCM_16K, WAV_8K), 400),
        ({"language": "en-US"}, ("audio/wav; codecs=audio/pcm", WAV), 400),
        ({"language": "en-US"}, ('audio/wav; codecs="audio/pcm"; samplerate=16000', WAV), 200),
    ],
)
async def test_azure_checks_query_content_type_and_audio(
    azure_fake: FakeAzureSpeech,
    http: aiohttp.ClientSession,
    query: dict[str, str],
    sent: tuple[str, bytes],
    status: int,
) -> None:
    content_type, audio = sent
    headers = {"Ocp-Apim-Subscription-Key": azure_fake.api_key, "Content-Type": content_type}
    async with http.post(
        f"{azure_fake.base_url}{AZURE_PATH}", params=query, headers=headers, data=audio
    ) as response:
        assert response.status == status


async def test_azure_simple_format_and_a_missing_key(
    azure_fake: FakeAzureSpeech, http: aiohttp.ClientSession
) -> None:
    url = f"{azure_fake.base_url}{AZURE_PATH}"
    content_type = {"Content-Type": "audio/wav; codecs=audio/pcm; samplerate=16000"}
    async with http.post(url, params={"language": "en-US"}, headers=content_type, data=WAV) as r:
        assert r.status == 401
    headers = {**content_type, "Ocp-Apim-Subscription-Key": azure_fake.api_key}
    async with http.post(url, params={"language": "en-US"}, headers=headers, data=WAV) as r:
        assert await r.json() == {
            "RecognitionStatus": "Success",
            "Offset": 500_000,
            "Duration": 2_000_000,
            "DisplayText": "Hello there.",
        }
