"""Building the TTS chain from settings and speaking through it (with stub providers)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.config import Settings, load_settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import FallbackChain, RetryPolicy
from openclaw_voice.tts.azure import AzureTextToSpeech
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from openclaw_voice.tts.elevenlabs import ElevenLabsTextToSpeech
from openclaw_voice.tts.google import GoogleTextToSpeech, language_of
from openclaw_voice.tts.openai import OpenAITextToSpeech
from openclaw_voice.tts.registry import (
    ChainTextToSpeech,
    build_provider,
    build_tts_chain,
    synthesize,
    tts_policy,
)

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
KEYS = {
    "TTS_API_KEY": "first-key",
    "OPENAI_API_KEY": "openai-key",
    "GOOGLE_API_KEY": "google-key",
    "AZURE_SPEECH_KEY": "azure-key",
    "AZURE_SPEECH_REGION": "westeurope",
}


def settings_for(chain: str, **extra: str) -> Settings:
    return load_settings({"DISCORD_TOKEN": TOKEN, "TTS_PROVIDER": chain, **KEYS, **extra})


async def test_builds_each_cloud_provider_with_its_settings() -> None:
    settings = load_settings(
        {
            "DISCORD_TOKEN": TOKEN,
            "TTS_PROVIDER": "elevenlabs,openai,google,azure",
            "TTS_FIRST_BYTE_TIMEOUT_SECONDS": "2",
            "PROVIDER_ATTEMPTS": "3",
            **KEYS,
            "ELEVENLABS_API_KEY": "unused-eleven-key",
        }
    )
    chain = build_tts_chain(settings)
    try:
        assert chain.names == ("elevenlabs", "openai", "google", "azure")
        eleven, openai, google, azure = chain.providers
        assert isinstance(eleven, ElevenLabsTextToSpeech)
        assert eleven.voice_settings.stability == 0.5
        assert eleven.voice_settings.similarity_boost == 0.75
        assert isinstance(openai, OpenAITextToSpeech)
        assert (openai.model, openai.voice) == ("gpt-4o-mini-tts", "alloy")
        assert isinstance(google, GoogleTextToSpeech)
        assert isinstance(azure, AzureTextToSpeech)
        assert azure._url == "https://westeurope.tts.speech.microsoft.com/cognitiveservices/v1"
        assert chain.policy.attempt_timeout == 2.0
        assert chain.policy.overall_timeout == 6.0
        assert chain.policy.attempts_per_provider == settings.speech.provider_attempts
        assert tts_policy(settings) == chain.policy
    finally:
        await ChainTextToSpeech(chain).aclose()


async def test_azure_base_url_override() -> None:
    settings = settings_for("azure", AZURE_TTS_BASE_URL="http://127.0.0.1:9/")
    provider = build_provider("azure", settings)
    assert isinstance(provider, AzureTextToSpeech)
    assert provider._url == "http://127.0.0.1:9/cognitiveservices/v1"
    await provider.aclose()


def test_azure_needs_a_region_or_a_base_url() -> None:
    settings = dataclasses.replace(settings_for("azure"), azure_speech_region=None)
    with pytest.raises(ProviderError) as caught:
        build_provider("azure", settings)
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED


def test_local_provider_is_imported_lazily() -> None:
    settings = settings_for("local", LOCAL_TTS_ENGINE="espeak")
    provider = build_provider("local", settings)
    assert provider.name == "local"


def test_unknown_provider_and_missing_key() -> None:
    settings = settings_for("openai")
    with pytest.raises(ValueError, match="unknown TTS provider"):
        build_provider("nope", settings)
    with pytest.raises(ProviderError) as caught:
        build_provider("elevenlabs", settings)
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED


def test_google_language_from_voice() -> None:
    assert language_of("en-GB-Wavenet-A") == "en-GB"
    assert language_of("odd") == "en-US"


def test_provider_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="pcm_12345"):
        ElevenLabsTextToSpeech(api_key="k", voice_id="v", model_id="m", sample_rate=12_345)
    with pytest.raises(ValueError, match="raw PCM"):
        AzureTextToSpeech(api_key="k", voice="v", base_url="http://x", sample_rate=12_345)


class EchoTts:
    """A stub provider recording the text it was asked to say."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.texts: list[str] = []

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        self.texts.append(request.text)
        yield PcmAudio(b"\x00\x00", 24_000)

    async def aclose(self) -> None:
        return None


def stub_chain(*providers: TextToSpeech) -> FallbackChain[TextToSpeech]:
    return FallbackChain(Stage.TTS, providers, RetryPolicy(attempt_timeout=1, overall_timeout=2))


async def test_synthesize_cleans_text_and_keeps_the_voice() -> None:
    echo = EchoTts("echo")
    chunks = [
        chunk async for chunk in synthesize(stub_chain(echo), SpeechRequest("**Hi** 🎉 there", "v"))
    ]
    assert len(chunks) == 1
    assert echo.texts == ["Hi there."]


async def test_synthesize_refuses_unspeakable_text_without_calling_a_provider() -> None:
    echo = EchoTts("echo")
    wrapper = ChainTextToSpeech(stub_chain(echo, EchoTts("other")))
    assert wrapper.name == "echo,other"
    with pytest.raises(ProviderError) as caught:
        await anext(aiter(wrapper.synthesize(SpeechRequest("🎉 ``` ```"))))
    assert caught.value.kind is ErrorKind.EMPTY_INPUT
    assert caught.value.provider == "echo,other"
    assert echo.texts == []
    await wrapper.aclose()
