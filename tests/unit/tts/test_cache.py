"""The phrase cache: LRU bounds, and the wrapper caching only complete short streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.cache import CachedTextToSpeech, PhraseCache


def audio(size: int) -> tuple[PcmAudio, ...]:
    return (PcmAudio(b"\x00" * size, 24_000),)


def test_lru_evicts_the_least_recently_used_entry() -> None:
    cache = PhraseCache(max_entries=2)
    cache.put(("p", None, "a"), audio(2))
    cache.put(("p", None, "b"), audio(2))
    assert cache.get(("p", None, "a")) is not None  # "a" is now the most recent
    cache.put(("p", None, "c"), audio(2))
    assert ("p", None, "b") not in cache
    assert ("p", None, "a") in cache
    assert len(cache) == 2


def test_bytes_bound_evicts_and_refuses_oversized_entries() -> None:
    cache = PhraseCache(max_entries=10, max_bytes=10)
    assert cache.put(("p", None, "a"), audio(6))
    assert cache.put(("p", None, "b"), audio(4))
    assert cache.bytes == 10
    assert cache.put(("p", None, "c"), audio(2))
    assert ("p", None, "a") not in cache
    assert cache.bytes == 6
    assert not cache.put(("p", None, "huge"), audio(12))
    assert not cache.put(("p", None, "none"), ())
    cache.put(("p", None, "b"), audio(2))  # replacing counts the new size only
    assert cache.bytes == 4
    cache.clear()
    assert (len(cache), cache.bytes) == (0, 0)


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        PhraseCache(max_entries=0)


class CountingTts:
    """A stub provider: counts calls; can fail after its first chunk."""

    name = "stub"

    def __init__(self) -> None:
        self.calls = 0
        self.fail_after_first = False
        self.closed = False

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        self.calls += 1
        yield PcmAudio(request.text.encode()[:2].ljust(2, b"\x00"), 24_000)
        if self.fail_after_first:
            raise ProviderError(Stage.TTS, ErrorKind.BAD_RESPONSE, self.name, "cut")
        yield PcmAudio(b"\x01\x00", 24_000)

    async def aclose(self) -> None:
        self.closed = True


async def speak(tts: CachedTextToSpeech, text: str, voice: str | None = None) -> list[PcmAudio]:
    return [chunk async for chunk in tts.synthesize(SpeechRequest(text, voice=voice))]


async def test_second_request_is_a_hit_per_voice() -> None:
    inner = CountingTts()
    tts = CachedTextToSpeech(inner)
    first = await speak(tts, "Hello.")
    assert await speak(tts, "Hello.") == first
    await speak(tts, "Hello.", voice="other")
    assert inner.calls == 2
    assert (tts.hits, tts.misses) == (1, 2)
    await tts.aclose()
    assert inner.closed


async def test_long_texts_are_not_cached() -> None:
    inner = CountingTts()
    tts = CachedTextToSpeech(inner, max_text_chars=10)
    await speak(tts, "A rather long sentence.")
    await speak(tts, "A rather long sentence.")
    assert inner.calls == 2
    assert len(tts.cache) == 0
    assert (tts.hits, tts.misses) == (0, 0)


async def test_failed_streams_are_not_cached() -> None:
    inner = CountingTts()
    inner.fail_after_first = True
    tts = CachedTextToSpeech(inner)
    with pytest.raises(ProviderError):
        await speak(tts, "Hello.")
    assert len(tts.cache) == 0


async def test_abandoned_streams_are_not_cached() -> None:
    inner = CountingTts()
    tts = CachedTextToSpeech(inner)
    stream = tts.synthesize(SpeechRequest("Hello."))
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(tts.cache) == 0
    await speak(tts, "Hello.")
    assert len(tts.cache) == 1
