"""ElevenLabs speech-to-text (Scribe) through the elevenlabs SDK's ``speech_to_text.convert``."""

from __future__ import annotations

from typing import Self

import httpx
from elevenlabs import SpeechToTextChunkResponseModel
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.core.parse_error import ParsingError

from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import Transcript, TranscriptionRequest
from openclaw_voice.stt.common import (
    bad_response,
    check_input,
    confidence_from_logprobs,
    empty_result,
    failure,
    normalize_language,
    status_failure,
    wav_bytes,
)


class ElevenLabsSpeechToText:
    """One ``POST /v1/speech-to-text`` per utterance; the SDK never retries (the chain does)."""

    name = "elevenlabs"

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str,
        model: str,
        language: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.model = model
        self._language = language
        self._http = httpx.AsyncClient(timeout=timeout)
        self._client = AsyncElevenLabs(
            api_key=api_key.reveal(),
            base_url=base_url.rstrip("/"),
            timeout=timeout,  # the SDK sets it per request, over the client's own
            httpx_client=self._http,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        key = settings.key_for("stt", cls.name)
        if key is None:
            raise failure(cls.name, ErrorKind.NOT_CONFIGURED, "no API key (ELEVENLABS_API_KEY)")
        speech = settings.speech
        return cls(
            api_key=key,
            base_url=settings.elevenlabs_base_url,
            model=speech.elevenlabs_stt_model,
            language=speech.stt_language,
            timeout=speech.stt_timeout_seconds,
        )

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        audio = request.audio
        check_input(audio, self.name)
        language = request.language or self._language
        try:
            response = await self._client.speech_to_text.convert(
                model_id=self.model,
                file=("utterance.wav", wav_bytes(audio), "audio/wav"),
                language_code=language,
                tag_audio_events=False,
                request_options={"max_retries": 0},
            )
        except ApiError as error:
            status = error.status_code or 0
            if 200 <= status < 300:
                raise bad_response(self.name, "the response is not JSON") from None
            raise status_failure(self.name, status, error.body, error.headers) from None
        except ParsingError:
            raise bad_response(self.name, "the response has an unexpected shape") from None
        except httpx.TimeoutException:
            raise failure(self.name, ErrorKind.TIMEOUT, "the request timed out") from None
        except httpx.HTTPError as error:
            raise failure(
                self.name, ErrorKind.UNAVAILABLE, f"request failed ({type(error).__name__})"
            ) from None
        if not isinstance(response, SpeechToTextChunkResponseModel) or not isinstance(
            response.text, str
        ):
            raise bad_response(self.name, "expected a single transcript")
        text = " ".join(response.text.split())
        if not text:
            raise empty_result(self.name)
        words = [word for word in response.words or [] if word.type == "word"]
        return Transcript(
            text=text,
            provider=self.name,
            duration_seconds=audio.duration_seconds,
            language=normalize_language(response.language_code or language),
            confidence=confidence_from_logprobs(word.logprob for word in words),
            extra={"language_probability": response.language_probability},
        )

    async def aclose(self) -> None:
        await self._http.aclose()
