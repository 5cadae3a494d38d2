"""Azure Speech short-audio recognition over REST (``cognitiveservices/v1``) with a key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Self

import aiohttp

from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind
from openclaw_voice.http_session import LazyHttpSession
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import Transcript, TranscriptionRequest
from openclaw_voice.stt.common import (
    bad_response,
    check_input,
    failure,
    locale_for,
    normalize_language,
    post_for_json,
    wav_bytes,
)

# The short-audio API takes at most 60 seconds of audio per request.
MAX_SECONDS: Final = 60.0
PATH: Final = "/speech/recognition/conversation/cognitiveservices/v1"
# RecognitionStatus values meaning "no words": speech without a match, silence, noise.
_NOTHING_HEARD: Final = ("NoMatch", "InitialSilenceTimeout", "BabbleTimeout")


def default_base_url(region: str) -> str:
    return f"https://{region}.stt.speech.microsoft.com"


class AzureSpeechToText:
    """One short-audio recognition per utterance, ``format=detailed`` for the confidence."""

    name = "azure"

    def __init__(
        self, *, api_key: Secret, base_url: str, language: str, timeout: float = 10.0
    ) -> None:
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}{PATH}"
        self._language = language
        self._session = LazyHttpSession(aiohttp.ClientTimeout(total=timeout))

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        key = settings.key_for("stt", cls.name)
        if key is None:
            raise failure(cls.name, ErrorKind.NOT_CONFIGURED, "no key (AZURE_SPEECH_KEY)")
        speech = settings.speech
        base_url = speech.azure_stt_base_url
        if base_url is None:
            if not settings.azure_speech_region:
                raise failure(cls.name, ErrorKind.NOT_CONFIGURED, "no AZURE_SPEECH_REGION")
            base_url = default_base_url(settings.azure_speech_region)
        return cls(
            api_key=key,
            base_url=base_url,
            language=speech.stt_language,
            timeout=speech.stt_timeout_seconds,
        )

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        audio = request.audio
        check_input(audio, self.name, max_seconds=MAX_SECONDS)
        locale = locale_for(request.language or self._language)
        document = await post_for_json(
            self._session.get(),
            self.name,
            self._url,
            params={"language": locale, "format": "detailed"},
            headers={
                "Ocp-Apim-Subscription-Key": self._api_key.reveal(),
                "Content-Type": f"audio/wav; codecs=audio/pcm; samplerate={audio.sample_rate}",
                "Accept": "application/json",
            },
            data=wav_bytes(audio),
        )
        text, confidence = self._parse(document)
        return Transcript(
            text=text,
            provider=self.name,
            duration_seconds=audio.duration_seconds,
            language=normalize_language(locale),
            confidence=confidence,
        )

    def _parse(self, document: Mapping[str, Any]) -> tuple[str, float | None]:
        status = document.get("RecognitionStatus")
        if status in _NOTHING_HEARD:
            raise failure(self.name, ErrorKind.EMPTY_RESULT, f"no words recognised ({status})")
        if status == "Error":
            raise failure(self.name, ErrorKind.UNAVAILABLE, "the recognition service failed")
        if status != "Success":
            raise bad_response(self.name, f"unexpected RecognitionStatus {status!r}")
        best = document.get("NBest")
        top = best[0] if isinstance(best, list) and best else None
        if isinstance(top, Mapping):
            text, confidence = top.get("Display"), top.get("Confidence")
        else:
            text, confidence = document.get("DisplayText"), None
        if not isinstance(text, str):
            raise bad_response(self.name, "a successful recognition has no text")
        text = " ".join(text.split())
        if not text:
            raise failure(self.name, ErrorKind.EMPTY_RESULT, "no words recognised (empty text)")
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            return text, float(confidence)
        return text, None

    async def aclose(self) -> None:
        await self._session.close()
