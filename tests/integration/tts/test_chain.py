"""The TTS chain from settings against the fakes: cleaning, fallback, timeouts, the cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.config import load_settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import Attempt, FallbackChain, RetryPolicy
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from openclaw_voice.tts.cache import CachedTextToSpeech
from openclaw_voice.tts.registry import (
    ChainTextToSpeech,
    SynthesisStats,
    build_tts_chain,
    synthesize,
)
from tests.fakes.elevenlabs_tts import FakeElevenLabsTts
from tests.fakes.openai_speech import FakeOpenAISpeech

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
MARKDOWN = (
    "## Result\nThe **answer** is `42` 🎉! See [the docs](https://docs.example.com/a/b) "
    "or https://www.example.org/page?x=1 for more."
)
CLEANED = "Result. The answer is 42! See the docs or example.org for more."


@pytest.fixture
async def eleven() -> AsyncIterator[FakeElevenLabsTts]:
    async with FakeElevenLabsTts() as fake:
        yield fake


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAISpeech]:
    async with FakeOpenAISpeech() as fake:
        yield fake


@pytest.fixture
async def chain(
    eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> AsyncIterator[FallbackChain[TextToSpeech]]:
    """elevenlabs, then openai, from settings; one attempt each."""
    settings = load_settings(
        {
            "DISCORD_TOKEN": TOKEN,
            "TTS_PROVIDER": "elevenlabs,openai",
            "TTS_API_KEY": eleven.api_key,
            "OPENAI_API_KEY": openai_fake.api_key,
            "ELEVENLABS_BASE_URL": eleven.base_url,
            "OPENAI_BASE_URL": f"{openai_fake.base_url}/v1",
            "TTS_FIRST_BYTE_TIMEOUT_SECONDS": "4",
        }
    )
    built = build_tts_chain(settings, observer=attempts.append)
    assert (built.policy.attempt_timeout, built.policy.overall_timeout) == (4.0, 12.0)
    built.policy = RetryPolicy(attempt_timeout=5.0, overall_timeout=10.0, attempts_per_provider=1)
    try:
        yield built
    finally:
        await ChainTextToSpeech(built).aclose()


attempts: list[Attempt] = []


@pytest.fixture(autouse=True)
def fresh_attempts() -> None:
    attempts.clear()


async def speak(chain: FallbackChain[TextToSpeech], text: str) -> list[PcmAudio]:
    return [chunk async for chunk in synthesize(chain, SpeechRequest(text))]


async def test_chain_is_built_from_settings(chain: FallbackChain[TextToSpeech]) -> None:
    assert chain.names == ("elevenlabs", "openai")
    assert chain.stage is Stage.TTS


async def test_text_is_cleaned_before_it_is_sent(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts
) -> None:
    stats = SynthesisStats()
    chunks = [chunk async for chunk in synthesize(chain, SpeechRequest(MARKDOWN), stats=stats)]
    assert eleven.texts == [CLEANED]
    assert stats.completed
    assert (stats.provider, stats.characters) == ("elevenlabs", len(CLEANED))
    assert stats.bytes == len(eleven.audio_for(CLEANED))
    assert stats.audio_seconds == pytest.approx(stats.bytes / 2 / 24_000)
    assert stats.first_byte_seconds is not None
    assert 0 < stats.first_byte_seconds <= stats.seconds
    assert b"".join(c.data for c in chunks) == eleven.audio_for(CLEANED)
    assert eleven.bodies[0]["voice_settings"] == {"stability": 0.5, "similarity_boost": 0.75}
    assert [(a.provider, a.error) for a in attempts] == [("elevenlabs", None)]


async def test_nothing_speakable_raises_empty_input_without_a_request(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts
) -> None:
    with pytest.raises(ProviderError) as caught:
        await speak(chain, "🎉🎉 **``** ")
    assert caught.value.kind is ErrorKind.EMPTY_INPUT
    assert caught.value.code == 5008
    assert eleven.requests == []


async def test_server_error_falls_back_to_the_next_provider(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> None:
    eleven.controls.fail(500)
    stats = SynthesisStats()
    request = SpeechRequest("Hello from the fallback.")
    chunks = [chunk async for chunk in synthesize(chain, request, stats=stats)]
    assert stats.provider == "openai"
    assert b"".join(c.data for c in chunks) == openai_fake.audio_for("Hello from the fallback.")
    assert openai_fake.texts == ["Hello from the fallback."]
    assert [a.provider for a in attempts] == ["elevenlabs", "openai"]
    failed = attempts[0].error
    assert failed is not None
    assert failed.kind is ErrorKind.UNAVAILABLE


async def test_slow_first_byte_moves_on_to_the_next_provider(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> None:
    eleven.controls.fail(500)
    await speak(chain, "Warm up both clients.")
    # 1 s: the fallback's own first byte must fit too, also on a loaded CI machine.
    chain.policy = RetryPolicy(attempt_timeout=1.0, overall_timeout=5.0, attempts_per_provider=1)
    eleven.controls.latency = 2.0  # past the 1 s first-byte budget
    attempts.clear()
    chunks = await speak(chain, "Quick answer.")
    assert b"".join(c.data for c in chunks) == openai_fake.audio_for("Quick answer.")
    first = attempts[0].error
    assert first is not None
    assert first.kind is ErrorKind.TIMEOUT
    assert attempts[0].seconds < 2.0


async def test_bad_key_benches_the_provider(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> None:
    eleven.api_key = "rotated"
    await speak(chain, "One.")
    await speak(chain, "Two.")
    assert len(eleven.requests) == 1  # benched after the auth failure
    assert openai_fake.texts == ["One.", "Two."]


async def test_every_provider_failing_raises_the_last_error(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> None:
    eleven.controls.fail(500)
    openai_fake.controls.fail(429, retry_after=30)
    with pytest.raises(ProviderError) as caught:
        await speak(chain, "Anyone there?")
    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert caught.value.provider == "openai"


async def test_cut_after_first_audio_is_raised_not_fallen_back(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> None:
    eleven.controls.cut_stream_after = 6
    eleven.controls.chunk_delay = 0.001
    stats = SynthesisStats()
    request = SpeechRequest("A sentence long enough to stream in several chunks. " * 4)
    with pytest.raises(ProviderError) as caught:
        _ = [chunk async for chunk in synthesize(chain, request, stats=stats)]
    assert caught.value.kind in (ErrorKind.BAD_RESPONSE, ErrorKind.UNAVAILABLE)
    assert stats.bytes > 0
    assert not stats.completed
    assert openai_fake.requests == []


# --- the phrase cache over the chain ----------------------------------------------------------


async def test_cached_phrase_is_served_without_a_request(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts
) -> None:
    told: list[tuple[SpeechRequest, SynthesisStats]] = []
    cached = CachedTextToSpeech(ChainTextToSpeech(chain, on_stats=lambda r, s: told.append((r, s))))
    request = SpeechRequest("Sorry, I didn't catch that.")
    first = [chunk async for chunk in cached.synthesize(request)]
    second = [chunk async for chunk in cached.synthesize(request)]
    assert first == second
    assert len(eleven.requests) == 1
    assert (cached.hits, cached.misses) == (1, 1)
    assert cached.name == "elevenlabs,openai"
    ((said, stats),) = told  # the hit made no call, so only the miss reports
    assert said == request
    assert stats.completed
    assert stats.provider == "elevenlabs"


async def test_cache_ignores_failed_streams(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts, openai_fake: FakeOpenAISpeech
) -> None:
    cached = CachedTextToSpeech(ChainTextToSpeech(chain))
    request = SpeechRequest("One moment please.")
    eleven.controls.fail(500)
    openai_fake.controls.fail(500)
    with pytest.raises(ProviderError):
        _ = [chunk async for chunk in cached.synthesize(request)]
    assert len(cached.cache) == 0
    chunks = [chunk async for chunk in cached.synthesize(request)]
    assert b"".join(c.data for c in chunks) == eleven.audio_for("One moment please.")
    assert len(cached.cache) == 1
    assert (cached.hits, cached.misses) == (0, 2)


async def test_cache_ignores_a_stream_cut_after_some_audio(
    chain: FallbackChain[TextToSpeech], eleven: FakeElevenLabsTts
) -> None:
    cached = CachedTextToSpeech(ChainTextToSpeech(chain))
    phrase = (
        "I'm having trouble reaching the service I rely on right now, so please give me a "
        "moment and then try asking me again in a little while; thank you for your patience."
    )
    assert len(phrase) <= cached.max_text_chars
    request = SpeechRequest(phrase)
    eleven.controls.cut_stream_after = 6
    eleven.controls.chunk_delay = 0.001
    received: list[PcmAudio] = []

    async def drain() -> None:
        async for chunk in cached.synthesize(request):
            received.append(chunk)

    with pytest.raises(ProviderError):
        await drain()
    assert received  # some audio was passed on before the cut
    assert len(cached.cache) == 0
