"""Every cloud TTS provider against its fake: audio, request shape, errors, long text."""

from __future__ import annotations

import base64
import io
import json
import wave

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from tests.fakes.azure_tts import FakeAzureTts
from tests.integration.tts.conftest import (
    PROVIDERS,
    SAMPLE_RATE,
    Rig,
    closed_port_url,
    collect,
    make_provider,
    rig,
)

HELLO = "Hello there, this is a test of the voice."
# Long enough (≈ 8 kB of audio) for every client to pass several chunks on.
SPEECH = "Hello there. This is a test of the voice, with a few sentences. " * 5
STREAMING = ("elevenlabs", "openai", "azure")  # the APIs that stream audio as it is made


def assert_whole_pcm(chunks: list[PcmAudio]) -> None:
    assert chunks
    for chunk in chunks:
        assert chunk.sample_rate == SAMPLE_RATE
        assert chunk.channels == 1
        assert chunk.data
        assert len(chunk.data) % 2 == 0


async def failure_of(provider: TextToSpeech, text: str = HELLO) -> tuple[ProviderError, int]:
    """The error the stream raises and how many chunks came before it."""
    received: list[PcmAudio] = []

    async def drain() -> None:
        async for chunk in provider.synthesize(SpeechRequest(text)):
            received.append(chunk)

    with pytest.raises(ProviderError) as caught:
        await drain()
    return caught.value, len(received)


async def test_synthesizes_whole_sample_pcm_matching_the_audio_sent(provider_rig: Rig) -> None:
    # Network chunks of 1, 7, 333, ... bytes arrive one by one: samples split across them.
    provider_rig.fake.controls.chunk_delay = 0.001
    chunks = await collect(provider_rig.provider, SPEECH)

    assert_whole_pcm(chunks)
    assert b"".join(chunk.data for chunk in chunks) == provider_rig.fake.audio_for(SPEECH)
    assert provider_rig.fake.texts == [SPEECH]
    if provider_rig.name in STREAMING:
        assert len(chunks) > 1  # passed on as it arrives, re-chunked to whole samples


async def test_wrong_key_is_an_auth_error(provider_rig: Rig) -> None:
    provider = make_provider(provider_rig.name, provider_rig.fake.base_url, "wrong-key")
    try:
        error, received = await failure_of(provider)
    finally:
        await provider.aclose()
    assert error.kind is ErrorKind.AUTH
    assert not error.retryable
    assert received == 0
    assert "wrong-key" not in str(error)


async def test_rate_limit_carries_retry_after(provider_rig: Rig) -> None:
    provider_rig.fake.controls.fail(429, retry_after=3)
    error, _ = await failure_of(provider_rig.provider)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.status == 429
    assert error.retry_after == 3.0


async def test_server_error_is_unavailable(provider_rig: Rig) -> None:
    provider_rig.fake.controls.fail(500)
    error, _ = await failure_of(provider_rig.provider)
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.retryable
    assert error.code == 5003


async def test_a_stream_cut_mid_way_raises(provider_rig: Rig) -> None:
    provider_rig.fake.controls.cut_stream_after = 1 if provider_rig.name == "google" else 6
    provider_rig.fake.controls.chunk_delay = 0.001
    error, received = await failure_of(provider_rig.provider, SPEECH)
    assert error.kind in (ErrorKind.BAD_RESPONSE, ErrorKind.UNAVAILABLE)
    if provider_rig.name in STREAMING:
        assert received >= 1  # audio was on its way: the cut is raised, not a short stream


async def test_empty_audio_is_an_empty_result(provider_rig: Rig) -> None:
    provider_rig.fake.empty_audio = True
    error, received = await failure_of(provider_rig.provider)
    assert error.kind is ErrorKind.EMPTY_RESULT
    assert received == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_connection_refused_is_unavailable(name: str) -> None:
    provider = make_provider(name, closed_port_url(), "key")
    try:
        error, _ = await failure_of(provider)
    finally:
        await provider.aclose()
    assert error.kind is ErrorKind.UNAVAILABLE


def long_text(sentences: int = 260) -> str:
    return " ".join(
        f"Sentence number {index} says e.g. that Dr. Smith paid $3.50 for item {index}."
        for index in range(sentences)
    )


async def test_long_text_is_split_at_sentences_and_streamed_in_order(provider_rig: Rig) -> None:
    text = long_text()
    assert len(text) > 15_000

    chunks = await collect(provider_rig.provider, text)

    texts = provider_rig.fake.texts
    limit = 4_096 if provider_rig.name == "openai" else 5_000
    assert len(texts) >= 4
    assert all(len(part) <= limit for part in texts)
    assert all(part.endswith(".") and part[0].isupper() for part in texts)
    assert " ".join(texts) == text
    expected = b"".join(provider_rig.fake.audio_for(part) for part in texts)
    assert b"".join(chunk.data for chunk in chunks) == expected
    assert_whole_pcm(chunks)


async def test_only_empty_text_makes_no_request(provider_rig: Rig) -> None:
    error, _ = await failure_of(provider_rig.provider, "   ")
    assert error.kind is ErrorKind.EMPTY_INPUT
    assert provider_rig.fake.requests == []


# --- what each API receives -----------------------------------------------------------------


async def test_elevenlabs_request_shape() -> None:
    async with rig("elevenlabs") as started:
        await collect(started.provider, HELLO, voice="other-voice")
        (request,) = started.fake.requests
    assert request.path == "/v1/text-to-speech/other-voice/stream"
    assert request.query["output_format"] == "pcm_24000"
    assert request.headers["xi-api-key"] == "eleven-test-key"
    body = json.loads(request.body)
    assert body["text"] == HELLO
    assert body["model_id"] == "eleven_flash_v2_5"
    assert body["voice_settings"] == {"stability": 0.5, "similarity_boost": 0.75}


async def test_openai_request_shape() -> None:
    async with rig("openai") as started:
        await collect(started.provider, HELLO)
        (request,) = started.fake.requests
    assert request.path == "/v1/audio/speech"
    assert request.headers["Authorization"] == "Bearer openai-test-key"
    body = json.loads(request.body)
    assert body == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": HELLO,
        "response_format": "pcm",
    }


async def test_google_request_shape_and_key_in_query() -> None:
    async with rig("google") as started:
        await collect(started.provider, HELLO)
        (request,) = started.fake.requests
    assert request.path == "/v1/text:synthesize"
    assert request.query == {"key": "google-test-key"}
    assert json.loads(request.body) == {
        "input": {"text": HELLO},
        "voice": {"languageCode": "en-US", "name": "en-US-Neural2-F"},
        "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 24_000},
    }


async def test_google_invalid_json_is_a_bad_response() -> None:
    async with rig("google") as started:
        started.fake.controls.malformed_json = 1
        error, _ = await failure_of(started.provider)
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_google_missing_audio_content_is_a_bad_response() -> None:
    async with rig("google") as started:
        started.fake.controls.fail(200, body='{"something": "else"}')
        error, _ = await failure_of(started.provider)
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_google_non_base64_audio_is_a_bad_response() -> None:
    async with rig("google") as started:
        started.fake.controls.fail(200, body='{"audioContent": "not base64!"}')
        error, _ = await failure_of(started.provider)
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_google_counts_the_byte_limit_not_characters() -> None:
    text = " ".join(f"Ça coûte {index} € à Zürich, très élevé." for index in range(250))
    assert len(text) < 11_000 < len(text.encode())
    async with rig("google") as started:
        chunks = await collect(started.provider, text)
        texts = started.fake.texts
    assert all(len(part.encode()) <= 5_000 for part in texts)
    assert " ".join(texts) == text
    assert_whole_pcm(chunks)


async def test_azure_ssml_escapes_text_and_sends_the_output_format() -> None:
    text = 'Tom & Jerry say <hello> "quoted" it\'s fine'
    async with rig("azure") as started:
        await collect(started.provider, text, voice="en-GB-SoniaNeural")
        (request,) = started.fake.requests
        assert started.fake.texts == [text]
        assert isinstance(started.fake, FakeAzureTts)
        assert started.fake.voices == ["en-GB-SoniaNeural"]
    assert request.path == "/cognitiveservices/v1"
    assert request.headers["X-Microsoft-OutputFormat"] == "raw-24khz-16bit-mono-pcm"
    assert request.headers["Ocp-Apim-Subscription-Key"] == "azure-test-key"
    assert request.headers["Content-Type"] == "application/ssml+xml"
    assert 'xml:lang="en-GB"' in request.body.decode()
    assert "&amp;" in request.body.decode()


async def google_failure_for(audio_content: bytes) -> ErrorKind:
    body = json.dumps({"audioContent": base64.b64encode(audio_content).decode()})
    async with rig("google") as started:
        started.fake.controls.fail(200, body=body)
        error, _ = await failure_of(started.provider)
    return error.kind


async def test_google_raw_pcm_without_a_wav_header_is_accepted() -> None:
    body = json.dumps({"audioContent": base64.b64encode(b"\x01\x00" * 100).decode()})
    async with rig("google") as started:
        started.fake.controls.fail(200, body=body)
        chunks = await collect(started.provider, HELLO)
    assert b"".join(c.data for c in chunks) == b"\x01\x00" * 100
    assert_whole_pcm(chunks)


async def test_google_unusable_audio_is_a_bad_response() -> None:
    eight_bit = io.BytesIO()
    with wave.open(eight_bit, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(1)
        clip.setframerate(8_000)
        clip.writeframes(b"\x80" * 10)
    assert await google_failure_for(eight_bit.getvalue()) is ErrorKind.BAD_RESPONSE
    assert await google_failure_for(b"RIFF\x00\x00garbage") is ErrorKind.BAD_RESPONSE
    assert await google_failure_for(b"\x01\x00\x02") is ErrorKind.BAD_RESPONSE
    assert await google_failure_for(b"") is ErrorKind.EMPTY_RESULT


async def test_abandoning_the_stream_stops_before_the_next_request(provider_rig: Rig) -> None:
    """A barge-in closes the stream: the open request ends and no later part is requested."""
    stream = provider_rig.provider.synthesize(SpeechRequest(long_text()))
    first = await anext(aiter(stream))
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.data
    assert len(provider_rig.fake.texts) == 1
