"""The text-to-speech interface every TTS provider implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from openclaw_voice.audio.pcm import PcmAudio


@dataclass(frozen=True)
class SpeechRequest:
    """Text to speak (already cleaned of markdown/emoji/URLs) and an optional voice."""

    text: str
    voice: str | None = None
    guild_id: int | None = None


@runtime_checkable
class TextToSpeech(Protocol):
    """Streams speech as s16le PCM chunks (whole samples, the provider's own rate).

    The stream's first chunk should arrive as soon as the provider sends audio; errors
    raise ProviderError (stage TTS), before or during the stream.
    """

    name: str

    def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]: ...

    async def aclose(self) -> None: ...
