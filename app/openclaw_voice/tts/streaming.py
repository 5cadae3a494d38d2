"""Shared plumbing of the cloud TTS adapters: whole-sample chunks, request parts, HTTP errors."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing

from openclaw_voice.audio.pcm import BYTES_PER_SAMPLE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage, kind_for_status
from openclaw_voice.tts.text import Length, split_for_requests

DEFAULT_SAMPLE_RATE = 24_000


class SampleAligner:
    """Re-chunks network bytes into whole-sample PCM, carrying a split sample over."""

    def __init__(self, provider: str, sample_rate: int, channels: int = 1) -> None:
        self.provider = provider
        self.sample_rate = sample_rate
        self.channels = channels
        self.total_bytes = 0
        self._frame = BYTES_PER_SAMPLE * channels
        self._carry = b""

    def push(self, data: bytes) -> PcmAudio | None:
        """The whole frames so far (None if not one yet); the remainder waits."""
        data = self._carry + data
        whole = len(data) - len(data) % self._frame
        self._carry = data[whole:]
        if not whole:
            return None
        self.total_bytes += whole
        return PcmAudio(data[:whole], self.sample_rate, self.channels)

    def finish(self) -> None:
        """End of the stream: a partial frame left over means the audio was truncated."""
        if self._carry:
            raise ProviderError(
                Stage.TTS,
                ErrorKind.BAD_RESPONSE,
                self.provider,
                f"audio ended inside a sample ({len(self._carry)} stray byte(s))",
            )
        if not self.total_bytes:
            raise ProviderError(Stage.TTS, ErrorKind.EMPTY_RESULT, self.provider, "empty audio")


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def status_error(
    provider: str, status: int, headers: Mapping[str, str] | None, detail: str
) -> ProviderError:
    """The ProviderError for an HTTP error status (Retry-After honoured on 429/503)."""
    retry_after = None
    if headers is not None:
        retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
    return ProviderError(
        Stage.TTS,
        kind_for_status(status),
        provider,
        f"HTTP {status}: {detail[:200]}",
        status=status,
        retry_after=retry_after,
    )


def transport_error(provider: str, error: BaseException, *, received: int) -> ProviderError:
    """A connection failure: before any audio it is UNAVAILABLE, after some a cut stream."""
    name = type(error).__name__
    if received:
        return ProviderError(
            Stage.TTS,
            ErrorKind.BAD_RESPONSE,
            provider,
            f"stream cut after {received} bytes: {name}",
        )
    return ProviderError(Stage.TTS, ErrorKind.UNAVAILABLE, provider, f"connection failed: {name}")


async def stream_parts(
    provider: str,
    text: str,
    max_chars: int,
    open_part: Callable[[str], AsyncGenerator[PcmAudio, None]],
    *,
    length: Length = len,
) -> AsyncIterator[PcmAudio]:
    """Speak ``text`` as one request per part (split at sentences past ``max_chars``), in order."""
    parts = split_for_requests(text, max_chars, length=length)
    if not parts:
        raise ProviderError(Stage.TTS, ErrorKind.EMPTY_INPUT, provider, "nothing to say")
    for part in parts:
        async with aclosing(open_part(part)) as chunks:
            async for chunk in chunks:
                yield chunk
