"""Behaviour every cloud STT provider shares, each through its real SDK/REST against its fake."""

from __future__ import annotations

import pytest

from openclaw_voice.config import load_settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import Attempt, FallbackChain, RetryPolicy
from openclaw_voice.stt.base import SpeechToText, TranscriptionRequest
from openclaw_voice.stt.registry import build_stt_chain, close_chain, transcribe
from tests.fakes.speech_upload import silence, tone
from tests.integration.stt.conftest import Case, environment

SPEECH = TranscriptionRequest(tone(0.5), vocabulary=("Zorblax",))


async def failure_of(case: Case, request: TranscriptionRequest = SPEECH) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await case.provider.transcribe(request)
    assert caught.value.stage is Stage.STT
    assert caught.value.provider == case.name
    return caught.value


async def test_success_gives_text_language_confidence_and_duration(case: Case) -> None:
    case.fake.transcript = "Hello there, OpenClaw."
    transcript = await case.provider.transcribe(SPEECH)
    assert transcript.text == "Hello there, OpenClaw."
    assert transcript.provider == case.name
    assert transcript.language == "en"
    assert transcript.confidence == pytest.approx(case.confidence)
    assert transcript.duration_seconds == pytest.approx(0.5)
    assert len(case.fake.requests) == 1


async def test_a_rejected_key_is_auth(case: Case) -> None:
    case.fake.api_key = "a-different-key-0123456789"
    error = await failure_of(case)
    assert error.kind is ErrorKind.AUTH
    assert not error.retryable
    assert error.code == 4005
    # The real key never shows in what we report.
    assert case.settings.key_for("stt", case.name).reveal() not in str(error)  # type: ignore[union-attr]


async def test_429_with_retry_after_is_rate_limited_with_the_hint(case: Case) -> None:
    case.fake.controls.fail(429, retry_after=7)
    error = await failure_of(case)
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.status == 429
    assert error.retry_after == 7
    assert len(case.fake.requests) == 1  # the SDK made exactly one attempt


async def test_500_is_unavailable(case: Case) -> None:
    case.fake.controls.fail(500)
    error = await failure_of(case)
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.status == 500
    assert error.retryable
    assert len(case.fake.requests) == 1


async def test_malformed_json_is_bad_response(case: Case) -> None:
    case.fake.controls.malformed_json = 1
    error = await failure_of(case)
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_an_empty_transcript_is_empty_result(case: Case) -> None:
    case.fake.transcript = ""
    error = await failure_of(case)
    assert error.kind is ErrorKind.EMPTY_RESULT
    assert error.code == 4007


@pytest.mark.parametrize(
    "audio",
    [silence(0.5), silence(0.5, noise=20), silence(0.0)],
    ids=["digital-silence", "faint-noise", "no-samples"],
)
async def test_silent_or_empty_audio_makes_no_request(case: Case, audio: object) -> None:
    error = await failure_of(case, TranscriptionRequest(audio))  # type: ignore[arg-type]
    assert error.kind is ErrorKind.EMPTY_INPUT
    assert case.fake.requests == []


async def test_a_slow_server_times_out_in_the_chain_and_the_client_recovers(case: Case) -> None:
    attempts: list[Attempt] = []
    chain: FallbackChain[SpeechToText] = FallbackChain(
        Stage.STT,
        [case.provider],
        RetryPolicy(attempt_timeout=0.02, overall_timeout=1.0, attempts_per_provider=1),
        observer=attempts.append,
    )
    case.fake.controls.latency = 0.05
    with pytest.raises(ProviderError) as caught:
        await transcribe(chain, SPEECH)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert [attempt.error for attempt in attempts] == [caught.value]
    # The cancelled request left the provider's HTTP client usable.
    case.fake.controls.latency = 0
    assert (await case.provider.transcribe(SPEECH)).provider == case.name


async def test_an_unreachable_server_is_unavailable(case: Case) -> None:
    await case.fake.stop()
    error = await failure_of(case)
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.retryable


async def test_the_providers_own_http_timeout_is_a_timeout(case: Case) -> None:
    """A backstop for use outside a chain: STT_TIMEOUT_SECONDS bounds the HTTP client too."""
    settings = load_settings(environment({case.name: case.fake}, STT_TIMEOUT_SECONDS="0.02"))
    chain = build_stt_chain(settings)
    case.fake.controls.latency = 0.1
    try:
        with pytest.raises(ProviderError) as caught:
            await chain.providers[0].transcribe(SPEECH)
    finally:
        await close_chain(chain)
    assert caught.value.kind is ErrorKind.TIMEOUT


async def test_json_of_the_wrong_shape_is_bad_response(case: Case) -> None:
    case.fake.controls.fail(200, body='["not", "an", "object"]')
    error = await failure_of(case)
    assert error.kind is ErrorKind.BAD_RESPONSE
