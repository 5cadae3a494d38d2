"""The STT registry: STT_PROVIDER names → providers, lazy imports, the chain's policy."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from collections.abc import Awaitable, Callable

import pytest

from openclaw_voice.config import Settings, load_settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import RetryPolicy
from openclaw_voice.stt.azure import AzureSpeechToText
from openclaw_voice.stt.elevenlabs import ElevenLabsSpeechToText
from openclaw_voice.stt.google import GoogleSpeechToText
from openclaw_voice.stt.openai import OpenAISpeechToText
from openclaw_voice.stt.registry import build_stt_chain, close_chain, stt_policy

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
CLOUD = {
    "DISCORD_TOKEN": TOKEN,
    "STT_PROVIDER": "openai,elevenlabs,google,azure",
    "STT_API_KEY": "sk-first-0123456789",
    "ELEVENLABS_API_KEY": "xi-0123456789",
    "GOOGLE_API_KEY": "AIza-0123456789",
    "AZURE_SPEECH_KEY": "az-0123456789",
    "AZURE_SPEECH_REGION": "westeurope",
}


@pytest.fixture
def settings() -> Settings:
    return load_settings(CLOUD)


async def test_names_map_to_providers_in_order(settings: Settings) -> None:
    chain = build_stt_chain(settings)
    try:
        assert chain.stage is Stage.STT
        assert chain.names == ("openai", "elevenlabs", "google", "azure")
        kinds = [type(provider) for provider in chain.providers]
        assert kinds == [
            OpenAISpeechToText,
            ElevenLabsSpeechToText,
            GoogleSpeechToText,
            AzureSpeechToText,
        ]
        azure = chain.providers[3]
        assert isinstance(azure, AzureSpeechToText)
        assert azure._url.startswith("https://westeurope.stt.speech.microsoft.com/speech/")
    finally:
        await close_chain(chain)


def test_the_policy_comes_from_the_speech_settings() -> None:
    settings = load_settings({**CLOUD, "STT_TIMEOUT_SECONDS": "2.5", "PROVIDER_ATTEMPTS": "1"})
    assert stt_policy(settings) == RetryPolicy(
        attempt_timeout=2.5, overall_timeout=5.0, attempts_per_provider=1, cooldown=60
    )


async def test_local_is_imported_only_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []

    class LocalSpeechToText:
        name = "local"

        def __init__(self, engine: str) -> None:
            created.append(engine)

        async def aclose(self) -> None:
            created.append("closed")

    stub = types.ModuleType("openclaw_voice.stt.local")
    stub.LocalSpeechToText = LocalSpeechToText  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openclaw_voice.stt.local", stub)
    settings = load_settings({"DISCORD_TOKEN": TOKEN, "LOCAL_STT_ENGINE": "pocketsphinx"})
    chain = build_stt_chain(settings)
    assert chain.names == ("local",)
    await close_chain(chain)
    assert created == ["pocketsphinx", "closed"]


def test_importing_the_registry_loads_no_provider_sdk() -> None:
    probe = (
        "import sys, openclaw_voice.stt.registry; "
        "print(sorted(m for m in ('openai', 'elevenlabs', 'openclaw_voice.stt.local') "
        "if m in sys.modules))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_an_unknown_name_is_not_configured(settings: Settings) -> None:
    with pytest.raises(ProviderError) as caught:
        build_stt_chain(dataclasses.replace(settings, stt_provider=("whisperer",)))
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert caught.value.provider == "whisperer"


@pytest.mark.parametrize("name", ["openai", "elevenlabs", "google", "azure"])
def test_a_cloud_provider_without_a_key_is_not_configured(settings: Settings, name: str) -> None:
    keyless = dataclasses.replace(settings, stt_provider=(name,), provider_keys={})
    with pytest.raises(ProviderError) as caught:
        build_stt_chain(keyless)
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert caught.value.provider == name


async def test_azure_needs_a_region_or_a_base_url(settings: Settings) -> None:
    azure_only = dataclasses.replace(settings, stt_provider=("azure",), azure_speech_region=None)
    with pytest.raises(ProviderError, match="AZURE_SPEECH_REGION"):
        build_stt_chain(azure_only)
    speech = dataclasses.replace(settings.speech, azure_stt_base_url="http://127.0.0.1:9/")
    chain = build_stt_chain(dataclasses.replace(azure_only, speech=speech))
    provider = chain.providers[0]
    assert isinstance(provider, AzureSpeechToText)
    assert (
        provider._url == "http://127.0.0.1:9/speech/recognition/conversation/cognitiveservices/v1"
    )
    await close_chain(chain)


async def test_closing_goes_on_past_a_provider_that_fails_to_close(settings: Settings) -> None:
    chain = build_stt_chain(settings)
    closed: list[str] = []
    for provider in chain.providers:
        original = provider.aclose

        async def close(original: Callable[[], Awaitable[None]] = original) -> None:
            await original()
            closed.append("closed")
            raise RuntimeError("socket gone")

        provider.aclose = close  # type: ignore[method-assign]
    await close_chain(chain)
    assert closed == ["closed"] * 4
