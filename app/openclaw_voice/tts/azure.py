"""Azure Speech text-to-speech over REST: SSML in, chunked raw 24 kHz PCM out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # nosec B405
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

import aiohttp
import structlog

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.http_session import LazyHttpSession
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.streaming import SampleAligner, status_error, stream_parts, transport_error

log = structlog.get_logger(__name__)

MAX_CHARS: Final = 5_000  # kept well inside the service's SSML size limit
OUTPUT_FORMATS: Final = {
    16_000: "raw-16khz-16bit-mono-pcm",
    24_000: "raw-24khz-16bit-mono-pcm",
    48_000: "raw-48khz-16bit-mono-pcm",
}
SSML_NAMESPACE: Final = "http://www.w3.org/2001/10/synthesis"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def base_url_for(region: str) -> str:
    return f"https://{region}.tts.speech.microsoft.com"


def build_ssml(text: str, voice: str) -> str:
    """``<speak><voice name=…>text</voice></speak>``; ElementTree escapes the text.

    ElementTree only builds XML here (hence the bandit B405 waiver); nothing is parsed.
    """
    language = "-".join(voice.split("-")[:2]) or "en-US"
    speak = ET.Element("speak", {"version": "1.0", "xmlns": SSML_NAMESPACE, "xml:lang": language})
    element = ET.SubElement(speak, "voice", {"name": voice})
    element.text = _NOT_XML.sub(" ", text)
    return ET.tostring(speak, encoding="unicode")


class AzureTextToSpeech:
    """``POST {base}/cognitiveservices/v1`` with a subscription key, streamed as it arrives."""

    name = "azure"
    max_chars = MAX_CHARS

    def __init__(
        self,
        *,
        api_key: str,
        voice: str,
        base_url: str,
        sample_rate: int = 24_000,
        user_agent: str = "openclaw-voice",
    ) -> None:
        if sample_rate not in OUTPUT_FORMATS:
            raise ValueError(f"no raw PCM output format at {sample_rate} Hz")
        self.voice = voice
        self.sample_rate = sample_rate
        self._url = f"{base_url.rstrip('/')}/cognitiveservices/v1"
        self._headers = {
            "Ocp-Apim-Subscription-Key": api_key,
            "Content-Type": "application/ssml+xml",
            "X-Microsoft-OutputFormat": OUTPUT_FORMATS[sample_rate],
            "User-Agent": user_agent,
        }
        # No total limit: a long answer streams for as long as it takes to speak.
        self._session = LazyHttpSession(aiohttp.ClientTimeout(total=None, sock_connect=10.0))

    def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        voice = request.voice or self.voice
        return stream_parts(self.name, request.text, self.max_chars, lambda t: self._part(t, voice))

    async def _part(self, text: str, voice: str) -> AsyncGenerator[PcmAudio, None]:
        aligner = SampleAligner(self.name, self.sample_rate)
        body = build_ssml(text, voice).encode("utf-8")
        try:
            async with self._session.get().post(
                self._url, data=body, headers=self._headers
            ) as response:
                if response.status != 200:
                    detail = (await response.read()).decode("utf-8", "replace")
                    raise status_error(self.name, response.status, response.headers, detail)
                async for data in response.content.iter_any():
                    if (chunk := aligner.push(data)) is not None:
                        yield chunk
        except aiohttp.ClientError as error:
            raise transport_error(self.name, error, received=aligner.total_bytes) from None
        aligner.finish()
        log.debug(
            "tts part done",
            context={"provider": self.name, "chars": len(text), "bytes": aligner.total_bytes},
        )

    async def aclose(self) -> None:
        await self._session.close()
