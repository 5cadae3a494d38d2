"""Two real providers in one FallbackChain: retries, fallback, benching, Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from openclaw_voice.config import load_settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import Attempt, FallbackChain, RetryPolicy
from openclaw_voice.stt.base import SpeechToText, TranscriptionRequest
from openclaw_voice.stt.registry import build_stt_chain, close_chain, transcribe
from tests.fakes.google_stt import FakeGoogleSpeech
from tests.fakes.openai_transcriptions import FakeOpenAITranscriptions
from tests.fakes.speech_upload import silence, tone
from tests.integration.stt.conftest import environment

SPEECH = TranscriptionRequest(tone(0.3))


class RecordedSleep:
    """Stands in for asyncio.sleep: records the backoff instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class Pair:
    openai: FakeOpenAITranscriptions
    google: FakeGoogleSpeech
    chain: FallbackChain[SpeechToText]
    sleep: RecordedSleep
    attempts: list[Attempt]


@pytest.fixture
async def pair(
    openai_fake: FakeOpenAITranscriptions, google_fake: FakeGoogleSpeech
) -> AsyncIterator[Pair]:
    """openai first, google second, from settings; the backoff sleep recorded."""
    settings = load_settings(environment({"openai": openai_fake, "google": google_fake}))
    built = build_stt_chain(settings)
    sleep = RecordedSleep()
    attempts: list[Attempt] = []
    chain = FallbackChain(
        Stage.STT,
        built.providers,
        RetryPolicy(attempt_timeout=2.0, overall_timeout=10.0, attempts_per_provider=2),
        observer=attempts.append,
        sleep=sleep,
    )
    openai_fake.transcript = "from openai"
    google_fake.transcript = "from google"
    try:
        yield Pair(openai_fake, google_fake, chain, sleep, attempts)
    finally:
        await close_chain(built)


async def test_two_500s_from_the_first_fall_back_to_the_second(pair: Pair) -> None:
    pair.openai.controls.fail(500, times=2)
    transcript = await transcribe(pair.chain, SPEECH)
    assert transcript.text == "from google"
    assert len(pair.openai.requests) == 2
    assert len(pair.google.requests) == 1
    assert len(pair.sleep.delays) == 1
    assert 0 <= pair.sleep.delays[0] <= 0.2  # full jitter under base_delay * 2**0
    assert [(a.provider, a.error and a.error.kind) for a in pair.attempts] == [
        ("openai", ErrorKind.UNAVAILABLE),
        ("openai", ErrorKind.UNAVAILABLE),
        ("google", None),
    ]


async def test_a_401_benches_the_first_for_the_cooldown(pair: Pair) -> None:
    pair.openai.api_key = "revoked-key-0123456789"
    assert (await transcribe(pair.chain, SPEECH)).text == "from google"
    assert len(pair.openai.requests) == 1  # not retried: a bad key stays bad
    assert pair.sleep.delays == []
    assert not pair.chain.health.healthy("openai")
    assert (await transcribe(pair.chain, SPEECH)).text == "from google"
    assert len(pair.openai.requests) == 1  # skipped while benched
    assert len(pair.google.requests) == 2


async def test_a_retry_waits_what_retry_after_asks(pair: Pair) -> None:
    pair.openai.controls.fail(429, retry_after=3)
    assert (await transcribe(pair.chain, SPEECH)).text == "from openai"
    assert pair.sleep.delays == [3.0]
    assert len(pair.openai.requests) == 2
    assert pair.google.requests == []


async def test_retry_after_beyond_the_deadline_moves_on_at_once(pair: Pair) -> None:
    pair.openai.controls.fail(429, retry_after=60)
    assert (await transcribe(pair.chain, SPEECH)).text == "from google"
    assert pair.sleep.delays == []
    assert len(pair.openai.requests) == 1


async def test_an_empty_transcript_falls_back_without_benching(pair: Pair) -> None:
    pair.openai.transcript = ""
    assert (await transcribe(pair.chain, SPEECH)).text == "from google"
    assert pair.chain.health.healthy("openai")
    pair.openai.transcript = "from openai"
    assert (await transcribe(pair.chain, SPEECH)).text == "from openai"


async def test_silence_stops_the_chain_without_any_request(pair: Pair) -> None:
    with pytest.raises(ProviderError) as caught:
        await transcribe(pair.chain, TranscriptionRequest(silence()))
    assert caught.value.kind is ErrorKind.EMPTY_INPUT
    assert pair.openai.requests == []
    assert pair.google.requests == []
    assert pair.chain.health.healthy("openai")


async def test_when_every_provider_fails_the_last_error_is_raised(pair: Pair) -> None:
    pair.openai.controls.fail(503, times=2)
    pair.google.controls.fail(500, times=2)
    with pytest.raises(ProviderError) as caught:
        await transcribe(pair.chain, SPEECH)
    assert caught.value.provider == "google"
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert len(pair.sleep.delays) == 2


async def test_the_built_chain_uses_the_stt_settings(
    openai_fake: FakeOpenAITranscriptions, google_fake: FakeGoogleSpeech
) -> None:
    settings = load_settings(
        environment(
            {"openai": openai_fake, "google": google_fake},
            STT_TIMEOUT_SECONDS="4",
            PROVIDER_ATTEMPTS="3",
            PROVIDER_COOLDOWN_SECONDS="30",
        )
    )
    attempts: list[Attempt] = []
    chain = build_stt_chain(settings, observer=attempts.append)
    try:
        assert chain.names == ("openai", "google")
        assert chain.policy == RetryPolicy(
            attempt_timeout=4.0, overall_timeout=8.0, attempts_per_provider=3, cooldown=30
        )
        openai_fake.api_key = "revoked-key-0123456789"
        google_fake.transcript = "fallback works"
        assert (await transcribe(chain, SPEECH)).text == "fallback works"
        assert [attempt.provider for attempt in attempts] == ["openai", "google"]
    finally:
        await close_chain(chain)
