"""OpenAI audio transcriptions (whisper-1, gpt-4o-*-transcribe) through the openai SDK."""

from __future__ import annotations

from typing import Final, Self

import openai
from openai.types.audio import Transcription, TranscriptionVerbose

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
    phrases,
    status_failure,
    wav_bytes,
)

# The transcriptions endpoint takes files of at most 25 MB.
MAX_UPLOAD_BYTES: Final = 25 * 1024 * 1024
# Models that return token logprobs (``include=["logprobs"]``, json only).
_LOGPROB_MODELS: Final = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")


class OpenAISpeechToText:
    """One transcription request per utterance; the SDK never retries (the chain does)."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str,
        model: str,
        language: str | None = None,
        wake_name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.model = model
        self._language = language
        self._wake_name = wake_name
        self._client = openai.AsyncOpenAI(
            api_key=api_key.reveal(), base_url=base_url, max_retries=0, timeout=timeout
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        key = settings.key_for("stt", cls.name)
        if key is None:
            raise failure(cls.name, ErrorKind.NOT_CONFIGURED, "no API key (OPENAI_API_KEY)")
        speech = settings.speech
        return cls(
            api_key=key,
            base_url=settings.openai_base_url,
            model=speech.openai_stt_model,
            language=speech.stt_language,
            wake_name=speech.wake_name,
            timeout=speech.stt_timeout_seconds,
        )

    def _prompt(self, request: TranscriptionRequest) -> str | None:
        hints = phrases(self._wake_name, request.vocabulary)
        if not hints or "diarize" in self.model:
            return None
        return f"Names and terms: {', '.join(hints)}."

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        audio = request.audio
        check_input(audio, self.name, max_upload_bytes=MAX_UPLOAD_BYTES)
        upload = ("utterance.wav", wav_bytes(audio), "audio/wav")
        language = request.language or self._language
        prompt = self._prompt(request)
        try:
            if self.model.startswith("whisper"):
                verbose = await self._client.audio.transcriptions.create(
                    file=upload,
                    model=self.model,
                    response_format="verbose_json",
                    language=language or openai.omit,
                    prompt=prompt or openai.omit,
                )
                text, confidence, reported = self._from_verbose(verbose)
            else:
                wants_logprobs = self.model.startswith(_LOGPROB_MODELS)
                plain = await self._client.audio.transcriptions.create(
                    file=upload,
                    model=self.model,
                    response_format="json",
                    include=["logprobs"] if wants_logprobs else openai.omit,
                    language=language or openai.omit,
                    prompt=prompt or openai.omit,
                )
                text, confidence, reported = self._from_json(plain)
        except openai.APITimeoutError:
            raise failure(self.name, ErrorKind.TIMEOUT, "the request timed out") from None
        except openai.APIConnectionError as error:
            raise failure(self.name, ErrorKind.UNAVAILABLE, f"connection failed: {error}") from None
        except openai.APIStatusError as error:
            # AuthenticationError (401), RateLimitError (429, Retry-After), 5xx, ...
            raise status_failure(
                self.name, error.status_code, error.body or error.message, error.response.headers
            ) from None
        except (openai.APIResponseValidationError, ValueError) as error:
            # A body that is not JSON (json.JSONDecodeError) or not the expected shape.
            raise bad_response(self.name, f"unreadable response ({type(error).__name__})") from None
        except openai.OpenAIError as error:
            raise failure(
                self.name, ErrorKind.UNAVAILABLE, f"SDK error ({type(error).__name__})"
            ) from None
        text = " ".join(text.split())
        if not text:
            raise empty_result(self.name)
        return Transcript(
            text=text,
            provider=self.name,
            duration_seconds=audio.duration_seconds,
            language=normalize_language(reported or language),
            confidence=confidence,
            extra={"model": self.model},
        )

    def _from_verbose(self, response: object) -> tuple[str, float | None, str | None]:
        if not isinstance(response, TranscriptionVerbose) or not isinstance(response.text, str):
            raise bad_response(self.name, "expected a verbose_json transcription")
        segments = response.segments or []
        confidence = confidence_from_logprobs(segment.avg_logprob for segment in segments)
        language = response.language if isinstance(response.language, str) else None
        return response.text, confidence, language

    def _from_json(self, response: object) -> tuple[str, float | None, str | None]:
        if not isinstance(response, Transcription) or not isinstance(response.text, str):
            raise bad_response(self.name, "expected a json transcription")
        logprobs = response.logprobs or []
        confidence = confidence_from_logprobs(
            item.logprob for item in logprobs if item.logprob is not None
        )
        return response.text, confidence, None

    async def aclose(self) -> None:
        await self._client.close()
