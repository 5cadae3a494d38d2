"""The TTS provider registry: builds the configured fallback chain and speaks through it."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import FallbackChain, Observer, ProviderHealth, RetryPolicy
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from openclaw_voice.tts.text import clean_for_speech


def _key(settings: Settings, provider: str) -> str:
    secret = settings.key_for("tts", provider)
    if secret is None or not secret.reveal():
        raise ProviderError(Stage.TTS, ErrorKind.NOT_CONFIGURED, provider, "no API key set")
    return secret.reveal()


def build_provider(name: str, settings: Settings) -> TextToSpeech:
    """One provider by its ``TTS_PROVIDER`` name, configured from ``settings``."""
    speech = settings.speech
    if name == "elevenlabs":
        from openclaw_voice.tts.elevenlabs import ElevenLabsTextToSpeech

        return ElevenLabsTextToSpeech(
            api_key=_key(settings, name),
            voice_id=speech.elevenlabs_voice_id,
            model_id=speech.elevenlabs_tts_model,
            stability=speech.elevenlabs_stability,
            similarity_boost=speech.elevenlabs_similarity_boost,
            base_url=settings.elevenlabs_base_url,
        )
    if name == "openai":
        from openclaw_voice.tts.openai import OpenAITextToSpeech

        return OpenAITextToSpeech(
            api_key=_key(settings, name),
            model=speech.openai_tts_model,
            voice=speech.openai_tts_voice,
            base_url=settings.openai_base_url,
        )
    if name == "google":
        from openclaw_voice.tts.google import GoogleTextToSpeech

        return GoogleTextToSpeech(
            api_key=_key(settings, name),
            voice=speech.google_tts_voice,
            base_url=speech.google_tts_base_url,
        )
    if name == "azure":
        from openclaw_voice.tts.azure import AzureTextToSpeech, base_url_for

        base_url = speech.azure_tts_base_url
        if base_url is None:
            if not settings.azure_speech_region:
                raise ProviderError(
                    Stage.TTS, ErrorKind.NOT_CONFIGURED, name, "AZURE_SPEECH_REGION is not set"
                )
            base_url = base_url_for(settings.azure_speech_region)
        return AzureTextToSpeech(
            api_key=_key(settings, name), voice=speech.azure_tts_voice, base_url=base_url
        )
    if name == "local":
        from openclaw_voice.tts.local import LocalTextToSpeech

        local: TextToSpeech = LocalTextToSpeech(engine=speech.local_tts_engine)
        return local
    raise ValueError(f"unknown TTS provider {name!r}")


def tts_policy(settings: Settings) -> RetryPolicy:
    """Time bounds from the settings: first byte per attempt, three times that overall."""
    first_byte = settings.speech.tts_first_byte_timeout_seconds
    return RetryPolicy(
        attempt_timeout=first_byte,
        overall_timeout=3 * first_byte,
        attempts_per_provider=settings.speech.provider_attempts,
        cooldown=float(settings.speech.provider_cooldown_seconds),
    )


def build_tts_chain(
    settings: Settings,
    *,
    observer: Observer | None = None,
    health: ProviderHealth | None = None,
) -> FallbackChain[TextToSpeech]:
    """The ``TTS_PROVIDER`` chain, first choice first."""
    providers = [build_provider(name, settings) for name in settings.tts_provider]
    return FallbackChain(
        Stage.TTS, providers, tts_policy(settings), health=health, observer=observer
    )


@dataclass
class SynthesisStats:
    """What one :func:`synthesize` call did, for metrics (filled in as the stream runs)."""

    characters: int = 0  # cleaned characters sent to the provider
    provider: str | None = None  # the provider that served (or was tried last)
    bytes: int = 0
    audio_seconds: float = 0.0
    first_byte_seconds: float | None = None
    seconds: float = 0.0  # from the call until the stream ended, failed or was abandoned
    completed: bool = False


async def synthesize(
    chain: FallbackChain[TextToSpeech],
    request: SpeechRequest,
    *,
    stats: SynthesisStats | None = None,
) -> AsyncGenerator[PcmAudio, None]:
    """Clean the text, then stream it from the first provider of ``chain`` that answers.

    Text with nothing speakable left (only emoji, markup, whitespace) raises
    ``ProviderError(TTS, EMPTY_INPUT)`` without a request. ``stats``, if given, is filled
    in for metrics: characters, bytes, time to first byte and in total, the provider.
    """
    record = stats if stats is not None else SynthesisStats()
    started = time.monotonic()
    text = clean_for_speech(request.text)
    if not text:
        raise ProviderError(
            Stage.TTS, ErrorKind.EMPTY_INPUT, ",".join(chain.names), "nothing speakable"
        )
    cleaned = replace(request, text=text)
    record.characters = len(text)

    def open_stream(provider: TextToSpeech) -> AsyncIterator[PcmAudio]:
        record.provider = provider.name
        return provider.synthesize(cleaned)

    try:
        async for chunk in chain.stream(open_stream):
            if record.first_byte_seconds is None:
                record.first_byte_seconds = time.monotonic() - started
            record.bytes += len(chunk.data)
            record.audio_seconds += chunk.duration_seconds
            yield chunk
        record.completed = True
    finally:
        record.seconds = time.monotonic() - started


StatsSink = Callable[[SpeechRequest, SynthesisStats], None]


class ChainTextToSpeech:
    """A whole chain seen as one TextToSpeech (what :class:`CachedTextToSpeech` wraps).

    ``on_stats`` is told each call's :class:`SynthesisStats` when its stream ends (done,
    failed or abandoned): the place to record duration, bytes and characters per provider.
    """

    def __init__(
        self, chain: FallbackChain[TextToSpeech], *, on_stats: StatsSink | None = None
    ) -> None:
        self.chain = chain
        self.name = ",".join(chain.names)
        self._on_stats = on_stats

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        stats = SynthesisStats()
        stream = synthesize(self.chain, request, stats=stats)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()
            if self._on_stats is not None:
                self._on_stats(request, stats)

    async def aclose(self) -> None:
        for provider in self.chain.providers:
            await provider.aclose()
