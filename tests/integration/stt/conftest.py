"""Fixtures: each cloud STT provider built from settings and pointed at its started fake."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import pytest

from openclaw_voice.config import Settings, load_settings
from openclaw_voice.stt.base import SpeechToText
from openclaw_voice.stt.registry import build_stt_chain, close_chain
from tests.fakes.azure_stt import FakeAzureSpeech
from tests.fakes.elevenlabs_stt import FakeElevenLabsSpeechToText
from tests.fakes.google_stt import FakeGoogleSpeech
from tests.fakes.http import Controls, RecordedRequest
from tests.fakes.openai_transcriptions import FakeOpenAITranscriptions

DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
PROVIDERS = ("openai", "elevenlabs", "google", "azure")


class SpeechFake(Protocol):
    """What every speech API fake offers the tests."""

    api_key: str
    transcript: str
    controls: Controls
    requests: list[RecordedRequest]

    @property
    def base_url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def make_fake(name: str) -> SpeechFake:
    fakes: dict[str, type[SpeechFake]] = {
        "openai": FakeOpenAITranscriptions,
        "elevenlabs": FakeElevenLabsSpeechToText,
        "google": FakeGoogleSpeech,
        "azure": FakeAzureSpeech,
    }
    return fakes[name]()


# Confidence each provider should report from its fake's defaults.
EXPECTED_CONFIDENCE = {
    "openai": math.exp(-0.05),
    "elevenlabs": math.exp(-0.1),
    "google": 0.92,
    "azure": 0.87,
}


def environment(fakes: dict[str, SpeechFake], **overrides: str) -> dict[str, str]:
    """Settings variables pointing every provider in ``fakes`` at its fake, in order."""
    names = list(fakes)
    environ = {"DISCORD_TOKEN": DISCORD_TOKEN, "STT_PROVIDER": ",".join(names)}
    keys = {
        "openai": "OPENAI_API_KEY",
        "elevenlabs": "ELEVENLABS_API_KEY",
        "google": "GOOGLE_API_KEY",
        "azure": "AZURE_SPEECH_KEY",
    }
    for index, (name, fake) in enumerate(fakes.items()):
        environ["STT_API_KEY" if index == 0 else keys[name]] = fake.api_key
    if "openai" in fakes:
        environ["OPENAI_BASE_URL"] = f"{fakes['openai'].base_url}/v1"
    if "elevenlabs" in fakes:
        environ["ELEVENLABS_BASE_URL"] = fakes["elevenlabs"].base_url
    if "google" in fakes:
        environ["GOOGLE_SPEECH_BASE_URL"] = fakes["google"].base_url
    if "azure" in fakes:
        environ["AZURE_SPEECH_REGION"] = "westeurope"
        environ["AZURE_STT_BASE_URL"] = fakes["azure"].base_url
    environ.update(overrides)
    return environ


@dataclass
class Case:
    """One provider under test: its name, its started fake, and the provider itself."""

    name: str
    fake: SpeechFake
    settings: Settings
    provider: SpeechToText

    @property
    def confidence(self) -> float:
        return EXPECTED_CONFIDENCE[self.name]


@pytest.fixture(params=PROVIDERS)
async def case(request: pytest.FixtureRequest) -> AsyncIterator[Case]:
    name: str = request.param
    fake = make_fake(name)
    await fake.start()
    settings = load_settings(environment({name: fake}))
    chain = build_stt_chain(settings)
    try:
        yield Case(name, fake, settings, chain.providers[0])
    finally:
        await close_chain(chain)
        await fake.stop()


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAITranscriptions]:
    async with FakeOpenAITranscriptions() as fake:
        yield fake


@pytest.fixture
async def elevenlabs_fake() -> AsyncIterator[FakeElevenLabsSpeechToText]:
    async with FakeElevenLabsSpeechToText() as fake:
        yield fake


@pytest.fixture
async def google_fake() -> AsyncIterator[FakeGoogleSpeech]:
    async with FakeGoogleSpeech() as fake:
        yield fake


@pytest.fixture
async def azure_fake() -> AsyncIterator[FakeAzureSpeech]:
    async with FakeAzureSpeech() as fake:
        yield fake
