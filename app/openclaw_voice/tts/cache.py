"""An LRU cache of synthesized short phrases (spoken fallbacks, earcons), bounded in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Final

import structlog

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech

log = structlog.get_logger(__name__)

PhraseKey = tuple[str, str | None, str]  # (provider chain names, voice, text)

DEFAULT_MAX_ENTRIES: Final = 100
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_TEXT_CHARS: Final = 200


class PhraseCache:
    """Least-recently-used phrases → their complete audio, within entry and byte bounds."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("cache bounds must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[PhraseKey, tuple[PcmAudio, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: PhraseKey) -> tuple[PcmAudio, ...] | None:
        chunks = self._entries.get(key)
        if chunks is not None:
            self._entries.move_to_end(key)
        return chunks

    def put(self, key: PhraseKey, chunks: tuple[PcmAudio, ...]) -> bool:
        """Store ``chunks`` (False if larger than the whole cache), evicting the oldest."""
        size = sum(len(chunk.data) for chunk in chunks)
        if not chunks or size > self.max_bytes:
            return False
        self.discard(key)
        self._entries[key] = chunks
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= sum(len(chunk.data) for chunk in evicted)
        return True

    def discard(self, key: PhraseKey) -> None:
        chunks = self._entries.pop(key, None)
        if chunks is not None:
            self.bytes -= sum(len(chunk.data) for chunk in chunks)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0


class CachedTextToSpeech:
    """Wraps a TextToSpeech: short texts are served from the cache after one full synthesis.

    Only texts up to ``max_text_chars`` are cached, and only streams that completed (an
    error, a cut or an abandoned stream stores nothing). ``hits``/``misses`` count lookups
    of cacheable texts.
    """

    def __init__(
        self,
        inner: TextToSpeech,
        cache: PhraseCache | None = None,
        *,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache = cache if cache is not None else PhraseCache()
        self.max_text_chars = max_text_chars
        self.hits = 0
        self.misses = 0

    def key(self, request: SpeechRequest) -> PhraseKey:
        return (self.inner.name, request.voice, request.text)

    def cacheable(self, request: SpeechRequest) -> bool:
        return 0 < len(request.text) <= self.max_text_chars

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        key = self.key(request) if self.cacheable(request) else None
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self.hits += 1
                for chunk in cached:
                    yield chunk
                return
            self.misses += 1
        collected: list[PcmAudio] = []
        stream = self.inner.synthesize(request)
        try:
            async for chunk in stream:
                if key is not None:
                    collected.append(chunk)
                yield chunk
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        # Reached only when the stream ended normally: never a failed or abandoned one.
        if key is not None and self.cache.put(key, tuple(collected)):
            log.debug("tts phrase cached", context={"provider": key[0], "chars": len(key[2])})

    async def aclose(self) -> None:
        await self.inner.aclose()
