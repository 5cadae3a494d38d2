"""Google Cloud Text-to-Speech over REST (``text:synthesize``, LINEAR16) with an API key."""

from __future__ import annotations

import base64
import binascii
import io
import json
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final

import aiohttp
import structlog

from openclaw_voice.audio.pcm import BYTES_PER_SAMPLE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.http_session import LazyHttpSession
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.streaming import (
    DEFAULT_SAMPLE_RATE,
    SampleAligner,
    status_error,
    stream_parts,
    transport_error,
)

log = structlog.get_logger(__name__)

MAX_BYTES: Final = 5_000  # the API limits input to 5,000 bytes
CHUNK_SECONDS: Final = 0.2  # the whole clip arrives at once; pass it on in small chunks


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def language_of(voice: str) -> str:
    """``en-US-Neural2-F`` → ``en-US`` (Google voice names start with the language code)."""
    parts = voice.split("-")
    return "-".join(parts[:2]) if len(parts) >= 2 else "en-US"


class GoogleTextToSpeech:
    """``POST {base}/v1/text:synthesize?key=…`` → base64 WAV (LINEAR16), header stripped."""

    name = "google"
    max_chars = MAX_BYTES

    def __init__(
        self,
        *,
        api_key: str,
        voice: str,
        base_url: str = "https://texttospeech.googleapis.com",
        sample_rate: int = DEFAULT_SAMPLE_RATE,
    ) -> None:
        self.voice = voice
        self.sample_rate = sample_rate
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/v1/text:synthesize"
        # No total limit: a long answer streams for as long as it takes to speak.
        self._session = LazyHttpSession(aiohttp.ClientTimeout(total=None, sock_connect=10.0))

    def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        voice = request.voice or self.voice
        return stream_parts(
            self.name,
            request.text,
            self.max_chars,
            lambda text: self._part(text, voice),
            length=_utf8_length,
        )

    def _body(self, text: str, voice: str) -> dict[str, Any]:
        return {
            "input": {"text": text},
            "voice": {"languageCode": language_of(voice), "name": voice},
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": self.sample_rate},
        }

    async def _part(self, text: str, voice: str) -> AsyncGenerator[PcmAudio, None]:
        received = 0
        try:
            async with self._session.get().post(
                self._url, params={"key": self._api_key}, json=self._body(text, voice)
            ) as response:
                payload = await response.read()
                received = len(payload)
                if response.status != 200:
                    raise self._status_error(response, payload)
        except aiohttp.ClientError as error:
            # Never the error's text: the URL in it carries the key.
            raise transport_error(self.name, error, received=received) from None
        pcm = self._decode(payload)
        aligner = SampleAligner(self.name, pcm.sample_rate, pcm.channels)
        step = max(1, int(pcm.sample_rate * CHUNK_SECONDS)) * BYTES_PER_SAMPLE * pcm.channels
        for start in range(0, len(pcm.data), step):
            if (chunk := aligner.push(pcm.data[start : start + step])) is not None:
                yield chunk
        aligner.finish()
        log.debug(
            "tts part done",
            context={"provider": self.name, "chars": len(text), "bytes": aligner.total_bytes},
        )

    def _status_error(self, response: aiohttp.ClientResponse, payload: bytes) -> ProviderError:
        detail = payload.decode("utf-8", "replace")
        if response.status == 400 and "API_KEY_INVALID" in detail:
            return ProviderError(
                Stage.TTS, ErrorKind.AUTH, self.name, "API key not valid", status=400
            )
        return status_error(self.name, response.status, response.headers, detail)

    def _bad(self, detail: str) -> ProviderError:
        return ProviderError(Stage.TTS, ErrorKind.BAD_RESPONSE, self.name, detail)

    def _decode(self, payload: bytes) -> PcmAudio:
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self._bad("response is not valid JSON") from None
        content = document.get("audioContent") if isinstance(document, dict) else None
        if not isinstance(content, str):
            raise self._bad("response has no audioContent")
        try:
            audio = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise self._bad("audioContent is not base64") from None
        if not audio:
            raise ProviderError(Stage.TTS, ErrorKind.EMPTY_RESULT, self.name, "empty audio")
        if not audio.startswith(b"RIFF"):
            return self._pcm(audio, self.sample_rate, 1)
        try:
            with wave.open(io.BytesIO(audio), "rb") as clip:
                if clip.getsampwidth() != BYTES_PER_SAMPLE:
                    raise self._bad(f"{8 * clip.getsampwidth()}-bit audio, expected 16-bit")
                rate, channels = clip.getframerate(), clip.getnchannels()
                frames = clip.readframes(clip.getnframes())
        except (wave.Error, EOFError):
            raise self._bad("audioContent is not a readable WAV file") from None
        return self._pcm(frames, rate, channels)

    def _pcm(self, data: bytes, rate: int, channels: int) -> PcmAudio:
        if not data:
            raise ProviderError(Stage.TTS, ErrorKind.EMPTY_RESULT, self.name, "empty audio")
        if len(data) % (BYTES_PER_SAMPLE * channels):
            raise self._bad("audio is not a whole number of samples")
        return PcmAudio(data, rate, channels)

    async def aclose(self) -> None:
        await self._session.close()
