"""Google Cloud Speech-to-Text v1 ``speech:recognize`` over REST with an API key."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final, Self

import aiohttp

from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.http_session import LazyHttpSession
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import Transcript, TranscriptionRequest
from openclaw_voice.stt.common import (
    bad_response,
    check_input,
    empty_result,
    failure,
    locale_for,
    normalize_language,
    phrases,
    post_for_json,
    wav_bytes,
)

# Synchronous recognition takes at most one minute of audio.
MAX_SECONDS: Final = 60.0


class GoogleSpeechToText:
    """One ``speech:recognize`` call per utterance: LINEAR16 WAV content, phrase hints."""

    name = "google"

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str,
        language: str,
        wake_name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/v1/speech:recognize"
        self._language = language
        self._wake_name = wake_name
        self._session = LazyHttpSession(aiohttp.ClientTimeout(total=timeout))

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        key = settings.key_for("stt", cls.name)
        if key is None:
            raise failure(cls.name, ErrorKind.NOT_CONFIGURED, "no API key (GOOGLE_API_KEY)")
        speech = settings.speech
        return cls(
            api_key=key,
            base_url=speech.google_speech_base_url,
            language=speech.stt_language,
            wake_name=speech.wake_name,
            timeout=speech.stt_timeout_seconds,
        )

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        audio = request.audio
        check_input(audio, self.name, max_seconds=MAX_SECONDS)
        locale = locale_for(request.language or self._language)
        config: dict[str, Any] = {
            "encoding": "LINEAR16",
            "sampleRateHertz": audio.sample_rate,
            "audioChannelCount": audio.channels,
            "languageCode": locale,
            "maxAlternatives": 1,
            "enableAutomaticPunctuation": True,
        }
        hints = phrases(self._wake_name, request.vocabulary)
        if hints:
            config["speechContexts"] = [{"phrases": hints}]
        body = {
            "config": config,
            "audio": {"content": base64.b64encode(wav_bytes(audio)).decode("ascii")},
        }
        try:
            document = await post_for_json(
                self._session.get(),
                self.name,
                self._url,
                params={"key": self._api_key.reveal()},
                json_body=body,
            )
        except ProviderError as error:
            # Google answers a wrong key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID).
            if error.status == 400 and "api key" in error.detail.lower():
                raise failure(
                    self.name, ErrorKind.AUTH, error.detail.split(": ", 1)[-1], status=400
                ) from None
            raise
        text, confidence, reported = self._parse(document)
        return Transcript(
            text=text,
            provider=self.name,
            duration_seconds=audio.duration_seconds,
            language=normalize_language(reported or locale),
            confidence=confidence,
            extra={"request_id": document.get("requestId")} if "requestId" in document else {},
        )

    def _parse(self, document: Mapping[str, Any]) -> tuple[str, float | None, str | None]:
        results = document.get("results", [])
        if not isinstance(results, list):
            raise bad_response(self.name, "'results' is not a list")
        texts: list[str] = []
        confidences: list[float] = []
        language: str | None = None
        for result in results:
            alternatives = result.get("alternatives") if isinstance(result, Mapping) else None
            if not alternatives:
                continue
            top = alternatives[0]
            transcript = top.get("transcript", "") if isinstance(top, Mapping) else None
            if not isinstance(transcript, str):
                raise bad_response(self.name, "an alternative has no transcript text")
            texts.append(transcript)
            confidence = top.get("confidence")
            # 0.0 is Google's "not set" sentinel.
            if isinstance(confidence, int | float) and confidence > 0:
                confidences.append(float(confidence))
            reported = result.get("languageCode")
            language = language or (reported if isinstance(reported, str) else None)
        text = " ".join(" ".join(texts).split())
        if not text:
            raise empty_result(self.name)
        confidence_mean = sum(confidences) / len(confidences) if confidences else None
        return text, confidence_mean, language

    async def aclose(self) -> None:
        await self._session.close()
