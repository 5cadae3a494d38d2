"""What every cloud STT adapter shares: input checks, WAV upload, error and language mapping."""

from __future__ import annotations

import email.utils
import io
import json
import math
import time
import wave
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any, Final

import aiohttp
import numpy as np

from openclaw_voice.audio.pcm import BYTES_PER_SAMPLE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage, kind_for_status

# Below this RMS level (dBFS) an utterance is treated as silence and never uploaded.
SILENCE_DBFS: Final = -60.0
SILENCE_RMS: Final = 32768.0 * 10 ** (SILENCE_DBFS / 20)
WAV_HEADER_BYTES: Final = 44
MAX_DETAIL_CHARS: Final = 200

# Region a bare language code gets where an API wants a locale (Google, Azure).
_DEFAULT_REGIONS: Final[Mapping[str, str]] = {
    "ar": "ar-SA", "cs": "cs-CZ", "da": "da-DK", "de": "de-DE", "el": "el-GR", "en": "en-US",
    "es": "es-ES", "fi": "fi-FI", "fr": "fr-FR", "he": "he-IL", "hi": "hi-IN", "hu": "hu-HU",
    "id": "id-ID", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR", "nb": "nb-NO", "nl": "nl-NL",
    "pl": "pl-PL", "pt": "pt-BR", "ro": "ro-RO", "ru": "ru-RU", "sv": "sv-SE", "th": "th-TH",
    "tr": "tr-TR", "uk": "uk-UA", "vi": "vi-VN", "zh": "zh-CN",
}  # fmt: skip
# ISO 639-3 codes and English names some APIs report, back to ISO 639-1.
_LANGUAGE_ALIASES: Final[Mapping[str, str]] = {
    "ara": "ar", "ces": "cs", "cmn": "zh", "dan": "da", "deu": "de", "ell": "el", "eng": "en",
    "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi", "hun": "hu", "ind": "id", "ita": "it",
    "jpn": "ja", "kor": "ko", "nld": "nl", "nob": "nb", "pol": "pl", "por": "pt", "ron": "ro",
    "rus": "ru", "spa": "es", "swe": "sv", "tha": "th", "tur": "tr", "ukr": "uk", "vie": "vi",
    "zho": "zh", "arabic": "ar", "chinese": "zh", "czech": "cs", "danish": "da", "dutch": "nl",
    "english": "en", "finnish": "fi", "french": "fr", "german": "de", "greek": "el",
    "hebrew": "he", "hindi": "hi", "hungarian": "hu", "indonesian": "id", "italian": "it",
    "japanese": "ja", "korean": "ko", "norwegian": "nb", "polish": "pl", "portuguese": "pt",
    "romanian": "ro", "russian": "ru", "spanish": "es", "swedish": "sv", "thai": "th",
    "turkish": "tr", "ukrainian": "uk", "vietnamese": "vi",
}  # fmt: skip


def failure(provider: str, kind: ErrorKind, detail: str, **kwargs: Any) -> ProviderError:
    return ProviderError(Stage.STT, kind, provider, detail, **kwargs)


# --- input ------------------------------------------------------------------------------


def rms(audio: PcmAudio) -> float:
    """Root-mean-square level of the samples, in s16 units (0 for no samples)."""
    samples = np.frombuffer(audio.data, dtype="<i2")
    if samples.size == 0:
        return 0.0
    as_float = samples.astype(np.float64)
    return float(np.sqrt(np.mean(as_float * as_float)))


def check_input(
    audio: PcmAudio,
    provider: str,
    *,
    max_seconds: float | None = None,
    max_upload_bytes: int | None = None,
) -> None:
    """Refuse audio no request should be made for: empty, too long, or silent."""
    if audio.frames == 0:
        raise failure(provider, ErrorKind.EMPTY_INPUT, "no audio")
    if max_seconds is not None and audio.duration_seconds > max_seconds:
        raise failure(
            provider,
            ErrorKind.INPUT_TOO_LONG,
            f"{audio.duration_seconds:.1f} s of audio is over this API's {max_seconds:g} s limit",
        )
    upload = WAV_HEADER_BYTES + len(audio.data)
    if max_upload_bytes is not None and upload > max_upload_bytes:
        raise failure(
            provider,
            ErrorKind.INPUT_TOO_LONG,
            f"a {upload / 2**20:.1f} MiB upload is over this API's "
            f"{max_upload_bytes / 2**20:g} MiB file limit",
        )
    if rms(audio) < SILENCE_RMS:
        raise failure(provider, ErrorKind.EMPTY_INPUT, f"silence (below {SILENCE_DBFS:g} dBFS)")


def wav_bytes(audio: PcmAudio) -> bytes:
    """The PCM wrapped as a WAV file, written by the stdlib ``wave`` module."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(audio.channels)
        writer.setsampwidth(BYTES_PER_SAMPLE)
        writer.setframerate(audio.sample_rate)
        writer.writeframes(audio.data)
    return buffer.getvalue()


def phrases(wake_name: str | None, vocabulary: Iterable[str]) -> list[str]:
    """The wake name then the vocabulary, stripped, without blanks or repeats."""
    seen: set[str] = set()
    result: list[str] = []
    for phrase in (wake_name or "", *vocabulary):
        text = phrase.strip()
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            result.append(text)
    return result


# --- languages --------------------------------------------------------------------------


def locale_for(language: str) -> str:
    """A BCP-47 locale for APIs that want one: ``en`` → ``en-US``; a locale is kept."""
    if "-" in language:
        return language
    code = language.lower()
    return _DEFAULT_REGIONS.get(code, f"{code}-{code.upper()}")


def normalize_language(reported: str | None) -> str | None:
    """A provider's language (``en-us``, ``eng``, ``english``) as ISO 639-1 where known."""
    if not reported:
        return None
    value = reported.strip().lower().replace("_", "-")
    primary = value.split("-", 1)[0]
    if len(primary) == 2:
        return primary
    return _LANGUAGE_ALIASES.get(primary, value)


def confidence_from_logprobs(logprobs: Iterable[float]) -> float | None:
    """Mean per-token probability, ``exp(mean(logprob))``, or None with no tokens."""
    values = [value for value in logprobs if math.isfinite(value)]
    if not values:
        return None
    return min(1.0, max(0.0, math.exp(sum(values) / len(values))))


# --- responses --------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The server's wait hint in seconds: ``retry-after-ms``, or ``Retry-After`` as
    seconds or an HTTP date; None when absent or unreadable."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def error_message(body: object) -> str:
    """The human part of an API's error body, however the API shapes it, shortened."""
    message: object = body
    if isinstance(body, bytes | str):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        try:
            message = json.loads(text)
        except ValueError:
            message = text
    for key in ("error", "detail", "message"):
        if isinstance(message, Mapping) and key in message:
            message = message[key]
    if isinstance(message, Mapping):
        message = message.get("message", message)
    if isinstance(message, list) and message:
        first = message[0]
        message = first.get("msg", first) if isinstance(first, Mapping) else first
    text = " ".join(str(message).split()) or "no details"
    return text[:MAX_DETAIL_CHARS]


def status_failure(
    provider: str, status: int, body: object, headers: Mapping[str, str] | None
) -> ProviderError:
    """An HTTP error response as a ProviderError: kind by status, Retry-After kept."""
    return failure(
        provider,
        kind_for_status(status),
        f"HTTP {status}: {error_message(body)}",
        status=status,
        retry_after=parse_retry_after(headers),
    )


def empty_result(provider: str) -> ProviderError:
    return failure(provider, ErrorKind.EMPTY_RESULT, "the provider heard no words")


def bad_response(provider: str, detail: str) -> ProviderError:
    return failure(provider, ErrorKind.BAD_RESPONSE, detail)


# --- plain REST (Google, Azure) ---------------------------------------------------------


async def post_for_json(
    session: aiohttp.ClientSession,
    provider: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    json_body: object = None,
) -> Mapping[str, Any]:
    """POST and return the JSON object answered; every failure is a ProviderError.

    Messages never include the URL: a query string may hold an API key.
    """
    try:
        async with session.post(
            url, params=params, headers=headers, data=data, json=json_body
        ) as response:
            body = await response.read()
            if response.status >= 300:
                raise status_failure(provider, response.status, body, response.headers)
    except TimeoutError:  # aiohttp's own limit; the chain's deadline cancels instead
        raise failure(provider, ErrorKind.TIMEOUT, "the request timed out") from None
    except aiohttp.ClientError as error:
        raise failure(
            provider, ErrorKind.UNAVAILABLE, f"request failed ({type(error).__name__})"
        ) from None
    try:
        document = json.loads(body)
    except ValueError:
        raise bad_response(provider, "the response is not JSON") from None
    if not isinstance(document, Mapping):
        raise bad_response(provider, "the response is not a JSON object")
    return document
