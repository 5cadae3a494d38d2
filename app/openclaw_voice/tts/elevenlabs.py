"""ElevenLabs text-to-speech through its SDK's streaming endpoint, as raw PCM."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Final

import httpx
import structlog
from elevenlabs import AsyncElevenLabs, VoiceSettings
from elevenlabs.core.api_error import ApiError

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.streaming import (
    DEFAULT_SAMPLE_RATE,
    SampleAligner,
    status_error,
    stream_parts,
    transport_error,
)

log = structlog.get_logger(__name__)

MAX_CHARS: Final = 5_000  # the API's per-request text limit
PCM_RATES: Final = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)


class ElevenLabsTextToSpeech:
    """Streams ``pcm_<rate>`` audio from ``POST /v1/text-to-speech/{voice}/stream``."""

    name = "elevenlabs"
    max_chars = MAX_CHARS

    def __init__(
        self,
        *,
        api_key: str,
        voice_id: str,
        model_id: str,
        stability: float = 0.5,
        similarity_boost: float = 0.75,
        base_url: str = "https://api.elevenlabs.io",
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        timeout: float = 60.0,
    ) -> None:
        if sample_rate not in PCM_RATES:
            raise ValueError(f"ElevenLabs has no pcm_{sample_rate} output")
        self.voice_id = voice_id
        self.model_id = model_id
        self.sample_rate = sample_rate
        self.voice_settings = VoiceSettings(stability=stability, similarity_boost=similarity_boost)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
        self._client = AsyncElevenLabs(
            api_key=api_key, base_url=base_url.rstrip("/"), httpx_client=self._http
        )

    def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        voice = request.voice or self.voice_id
        return stream_parts(self.name, request.text, self.max_chars, lambda t: self._part(t, voice))

    async def _part(self, text: str, voice: str) -> AsyncGenerator[PcmAudio, None]:
        aligner = SampleAligner(self.name, self.sample_rate)
        audio = self._client.text_to_speech.stream(
            voice,
            text=text,
            model_id=self.model_id,
            output_format=f"pcm_{self.sample_rate}",
            voice_settings=self.voice_settings,
            request_options={"max_retries": 0},
        )
        try:
            async with aclosing(audio):
                async for data in audio:
                    if (chunk := aligner.push(data)) is not None:
                        yield chunk
        except ApiError as error:
            raise status_error(
                self.name, error.status_code or 0, error.headers, str(error.body)
            ) from None
        except httpx.HTTPError as error:
            raise transport_error(self.name, error, received=aligner.total_bytes) from error
        aligner.finish()
        log.debug(
            "tts part done",
            context={"provider": self.name, "chars": len(text), "bytes": aligner.total_bytes},
        )

    async def aclose(self) -> None:
        await self._http.aclose()
