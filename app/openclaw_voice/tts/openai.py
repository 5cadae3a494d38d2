"""OpenAI text-to-speech through its SDK's streaming speech endpoint, as 24 kHz PCM."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

import httpx2
import openai
import structlog

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.streaming import SampleAligner, status_error, stream_parts, transport_error

log = structlog.get_logger(__name__)

MAX_CHARS: Final = 4_096  # the API's input limit
SAMPLE_RATE: Final = 24_000  # response_format "pcm" is 24 kHz s16le mono


class OpenAITextToSpeech:
    """Streams ``POST /audio/speech`` with ``response_format="pcm"``."""

    name = "openai"
    max_chars = MAX_CHARS
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        voice: str,
        base_url: str = "https://api.openai.com/v1",
        timeout: float = 60.0,
    ) -> None:
        self.model = model
        self.voice = voice
        # One attempt per call: retries and timeouts belong to the FallbackChain.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )

    def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        voice = request.voice or self.voice
        return stream_parts(self.name, request.text, self.max_chars, lambda t: self._part(t, voice))

    async def _part(self, text: str, voice: str) -> AsyncGenerator[PcmAudio, None]:
        aligner = SampleAligner(self.name, self.sample_rate)
        speech = self._client.audio.speech.with_streaming_response
        try:
            async with speech.create(
                model=self.model, voice=voice, input=text, response_format="pcm"
            ) as response:
                async for data in response.iter_bytes():
                    if (chunk := aligner.push(data)) is not None:
                        yield chunk
        except openai.APIStatusError as error:
            raise status_error(
                self.name, error.status_code, error.response.headers, error.message
            ) from None
        except openai.APITimeoutError as error:
            raise ProviderError(Stage.TTS, ErrorKind.TIMEOUT, self.name, "timed out") from error
        except openai.APIConnectionError as error:
            raise transport_error(self.name, error, received=aligner.total_bytes) from error
        except httpx2.HTTPError as error:
            raise transport_error(self.name, error, received=aligner.total_bytes) from error
        aligner.finish()
        log.debug(
            "tts part done",
            context={"provider": self.name, "chars": len(text), "bytes": aligner.total_bytes},
        )

    async def aclose(self) -> None:
        await self._client.close()
