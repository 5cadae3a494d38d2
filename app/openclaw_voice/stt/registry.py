"""Builds the STT fallback chain named by ``STT_PROVIDER`` and runs a transcription on it."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import FallbackChain, Observer, RetryPolicy
from openclaw_voice.stt.base import SpeechToText, Transcript, TranscriptionRequest

log = structlog.get_logger(__name__)


def _openai(settings: Settings) -> SpeechToText:
    from openclaw_voice.stt.openai import OpenAISpeechToText

    return OpenAISpeechToText.from_settings(settings)


def _elevenlabs(settings: Settings) -> SpeechToText:
    from openclaw_voice.stt.elevenlabs import ElevenLabsSpeechToText

    return ElevenLabsSpeechToText.from_settings(settings)


def _google(settings: Settings) -> SpeechToText:
    from openclaw_voice.stt.google import GoogleSpeechToText

    return GoogleSpeechToText.from_settings(settings)


def _azure(settings: Settings) -> SpeechToText:
    from openclaw_voice.stt.azure import AzureSpeechToText

    return AzureSpeechToText.from_settings(settings)


def _local(settings: Settings) -> SpeechToText:
    # Imported here: the offline recogniser loads heavy optional dependencies.
    from openclaw_voice.stt.local import LocalSpeechToText

    provider: SpeechToText = LocalSpeechToText(engine=settings.speech.local_stt_engine)
    return provider


# Provider name (as in STT_PROVIDER) → factory; each imports its module only when used.
FACTORIES: dict[str, Callable[[Settings], SpeechToText]] = {
    "openai": _openai,
    "elevenlabs": _elevenlabs,
    "google": _google,
    "azure": _azure,
    "local": _local,
}


def stt_policy(settings: Settings) -> RetryPolicy:
    """Attempt bound STT_TIMEOUT_SECONDS, the whole call twice that."""
    speech = settings.speech
    return RetryPolicy(
        attempt_timeout=speech.stt_timeout_seconds,
        overall_timeout=2 * speech.stt_timeout_seconds,
        attempts_per_provider=speech.provider_attempts,
        cooldown=speech.provider_cooldown_seconds,
    )


def build_stt_chain(
    settings: Settings, *, observer: Observer | None = None
) -> FallbackChain[SpeechToText]:
    """The providers of ``settings.stt_provider`` in order, as one fallback chain.

    Raises ProviderError (NOT_CONFIGURED) for an unknown name or a provider missing its key.
    """
    providers: list[SpeechToText] = []
    for name in settings.stt_provider:
        factory = FACTORIES.get(name)
        if factory is None:
            raise ProviderError(
                Stage.STT, ErrorKind.NOT_CONFIGURED, name, "unknown speech-to-text provider"
            )
        providers.append(factory(settings))
    return FallbackChain(Stage.STT, providers, stt_policy(settings), observer=observer)


async def transcribe(
    chain: FallbackChain[SpeechToText], request: TranscriptionRequest
) -> Transcript:
    """Transcribe one utterance with the first provider of ``chain`` that succeeds."""

    async def attempt(provider: SpeechToText) -> Transcript:
        return await provider.transcribe(request)

    return await chain.call(attempt)


async def close_chain(chain: FallbackChain[SpeechToText]) -> None:
    """Close every provider's HTTP client; one failing to close does not stop the others."""
    for provider in chain.providers:
        try:
            await provider.aclose()
        except Exception as error:  # shutting down: report it and close the rest
            log.warning(
                "closing a speech-to-text provider failed",
                context={"provider": provider.name},
                error=f"{type(error).__name__}: {error}",
            )
