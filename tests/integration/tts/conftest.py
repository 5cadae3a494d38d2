"""Rigs: each cloud TTS provider wired to its local fake, started and closed per test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.tts.azure import AzureTextToSpeech
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from openclaw_voice.tts.elevenlabs import ElevenLabsTextToSpeech
from openclaw_voice.tts.google import GoogleTextToSpeech
from openclaw_voice.tts.openai import OpenAITextToSpeech
from tests.fakes.azure_tts import FakeAzureTts
from tests.fakes.elevenlabs_tts import FakeElevenLabsTts
from tests.fakes.google_tts import FakeGoogleTts
from tests.fakes.http import Controls, FakeHttpApi, RecordedRequest
from tests.fakes.openai_speech import FakeOpenAISpeech

PROVIDERS = ("elevenlabs", "openai", "google", "azure")
SAMPLE_RATE = 24_000


class TtsFake(Protocol):
    controls: Controls
    requests: list[RecordedRequest]
    texts: list[str]
    empty_audio: bool

    @property
    def base_url(self) -> str: ...

    def audio_for(self, text: str) -> bytes: ...


@dataclass
class Rig:
    """A started fake and a provider pointed at it."""

    name: str
    fake: TtsFake
    provider: TextToSpeech


def make_fake(name: str) -> FakeHttpApi:
    fakes: dict[str, type[FakeHttpApi]] = {
        "elevenlabs": FakeElevenLabsTts,
        "openai": FakeOpenAISpeech,
        "google": FakeGoogleTts,
        "azure": FakeAzureTts,
    }
    return fakes[name]()


def make_provider(name: str, base_url: str, api_key: str) -> TextToSpeech:
    if name == "elevenlabs":
        return ElevenLabsTextToSpeech(
            api_key=api_key, voice_id="voice-1", model_id="eleven_flash_v2_5", base_url=base_url
        )
    if name == "openai":
        return OpenAITextToSpeech(
            api_key=api_key, model="gpt-4o-mini-tts", voice="alloy", base_url=f"{base_url}/v1"
        )
    if name == "google":
        return GoogleTextToSpeech(api_key=api_key, voice="en-US-Neural2-F", base_url=base_url)
    return AzureTextToSpeech(api_key=api_key, voice="en-US-JennyNeural", base_url=base_url)


@asynccontextmanager
async def rig(name: str, *, api_key: str | None = None) -> AsyncIterator[Rig]:
    """``name``'s fake started and its provider (with the fake's key unless given) closed after."""
    fake = make_fake(name)
    async with fake:
        key = api_key if api_key is not None else getattr(fake, "api_key", "")
        provider = make_provider(name, fake.base_url, key)
        try:
            yield Rig(name, fake, provider)  # type: ignore[arg-type]
        finally:
            await provider.aclose()


@pytest.fixture(params=PROVIDERS)
async def provider_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with rig(request.param) as started:
        yield started


async def collect(provider: TextToSpeech, text: str, voice: str | None = None) -> list[PcmAudio]:
    return [chunk async for chunk in provider.synthesize(SpeechRequest(text, voice=voice))]


def closed_port_url() -> str:
    """A base URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return f"http://127.0.0.1:{port}"
