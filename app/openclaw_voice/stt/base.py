"""The speech-to-text interface every STT provider implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from openclaw_voice.audio.pcm import PcmAudio


@dataclass(frozen=True)
class TranscriptionRequest:
    """One utterance to transcribe: 16 kHz mono PCM plus hints for the recogniser."""

    audio: PcmAudio
    language: str | None = None
    # Words the recogniser should favour: the wake name, guild vocabulary.
    vocabulary: tuple[str, ...] = ()
    guild_id: int | None = None


@dataclass(frozen=True)
class Transcript:
    text: str
    provider: str
    duration_seconds: float
    language: str | None = None
    confidence: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class SpeechToText(Protocol):
    """Turns an utterance into text; raises ProviderError (stage STT) on failure."""

    name: str

    async def transcribe(self, request: TranscriptionRequest) -> Transcript: ...

    async def aclose(self) -> None: ...
