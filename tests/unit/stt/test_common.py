"""The STT adapters' shared helpers: input checks, WAV upload, retry hints, languages."""

from __future__ import annotations

import email.utils
import io
import math
import wave

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.stt.common import (
    SILENCE_RMS,
    check_input,
    confidence_from_logprobs,
    error_message,
    locale_for,
    normalize_language,
    parse_retry_after,
    phrases,
    rms,
    status_failure,
    wav_bytes,
)
from tests.fakes.speech_upload import silence, tone


def refusal(audio: PcmAudio, **limits: float) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        check_input(audio, "test", **limits)  # type: ignore[arg-type]
    assert caught.value.stage is Stage.STT
    return caught.value


def test_rms_of_a_tone_and_of_nothing() -> None:
    assert rms(tone(amplitude=0.5)) == pytest.approx(0.5 * 32767 / math.sqrt(2), rel=1e-3)
    assert rms(silence(0.0)) == 0.0


def test_silence_and_faint_noise_are_empty_input() -> None:
    assert refusal(silence()).kind is ErrorKind.EMPTY_INPUT
    faint = silence(noise=int(SILENCE_RMS))  # uniform noise: RMS ≈ peak / sqrt(3)
    assert refusal(faint).kind is ErrorKind.EMPTY_INPUT
    assert "silence" in refusal(faint).detail
    assert refusal(silence(0.0)).detail == "test: no audio"


def test_quiet_speech_is_not_silence() -> None:
    check_input(tone(amplitude=0.005), "test")  # about -49 dBFS


def test_limits_in_seconds_and_bytes() -> None:
    check_input(tone(1.0), "test", max_seconds=1.0)
    too_long = refusal(tone(1.5), max_seconds=1.0)
    assert too_long.kind is ErrorKind.INPUT_TOO_LONG
    assert too_long.detail == "test: 1.5 s of audio is over this API's 1 s limit"
    too_big = refusal(tone(1.0), max_upload_bytes=32_000)
    assert too_big.kind is ErrorKind.INPUT_TOO_LONG
    assert "MiB file limit" in too_big.detail
    # Length is checked before loudness: a long silence is "too long", not "silent".
    assert refusal(silence(2.0), max_seconds=1.0).kind is ErrorKind.INPUT_TOO_LONG


@pytest.mark.parametrize(("rate", "channels"), [(16_000, 1), (48_000, 2)])
def test_wav_bytes_round_trip_through_the_wave_module(rate: int, channels: int) -> None:
    audio = PcmAudio(bytes(range(256)) * 4 * channels, rate, channels)
    data = wav_bytes(audio)
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == rate
        assert reader.getnchannels() == channels
        assert reader.getsampwidth() == 2
        assert reader.readframes(reader.getnframes()) == audio.data
    assert len(data) == 44 + len(audio.data)


def test_phrases_put_the_wake_name_first_without_repeats_or_blanks() -> None:
    assert phrases("OpenClaw", ["zork", " Zork ", "openclaw", "", "Ada"]) == [
        "OpenClaw",
        "zork",
        "Ada",
    ]
    assert phrases(None, []) == []


@pytest.mark.parametrize(
    ("language", "locale"),
    [("en", "en-US"), ("DE", "de-DE"), ("pt", "pt-BR"), ("en-GB", "en-GB"), ("xx", "xx-XX")],
)
def test_locale_for(language: str, locale: str) -> None:
    assert locale_for(language) == locale


@pytest.mark.parametrize(
    ("reported", "code"),
    [
        ("en", "en"),
        ("en-us", "en"),
        ("EN_GB", "en"),
        ("eng", "en"),
        ("english", "en"),
        ("German", "de"),
        ("klingon", "klingon"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_language(reported: str | None, code: str | None) -> None:
    assert normalize_language(reported) == code


def test_confidence_from_logprobs() -> None:
    assert confidence_from_logprobs([0.0, 0.0]) == 1.0
    assert confidence_from_logprobs([-0.1, -0.3]) == pytest.approx(math.exp(-0.2))
    assert confidence_from_logprobs([math.nan, -math.inf, -0.5]) == pytest.approx(math.exp(-0.5))
    assert confidence_from_logprobs([]) is None
    assert confidence_from_logprobs([0.4]) == 1.0  # clamped


def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "soon", "Retry-After": "9"}) == 9
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(30)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0
    naive = "Fri, 15 Jan 2027 08:00:30"  # no zone: read as UTC
    assert parse_retry_after({"Retry-After": naive}, now=now) == pytest.approx(30)
    assert parse_retry_after({"Retry-After": "-5"}) == 0
    for unreadable in ("soon", "nan", "inf"):
        assert parse_retry_after({"Retry-After": unreadable}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "Incorrect API key provided."}}, "Incorrect API key provided."),
        (b'{"detail": {"status": "x", "message": "Invalid API key"}}', "Invalid API key"),
        ({"detail": [{"loc": ["body"], "msg": "Field required"}]}, "Field required"),
        ('{"error": {"code": 400, "message": "API key not valid."}}', "API key not valid."),
        ({"message": "plain"}, "plain"),
        ({"detail": ["first", "second"]}, "first"),
        (b"Unsupported   audio\nformat", "Unsupported audio format"),
        ("", "no details"),
        ("x" * 500, "x" * 200),
    ],
)
def test_error_message_finds_the_human_part(body: object, message: str) -> None:
    assert error_message(body) == message


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ErrorKind.AUTH),
        (403, ErrorKind.AUTH),
        (429, ErrorKind.RATE_LIMITED),
        (413, ErrorKind.INPUT_TOO_LONG),
        (400, ErrorKind.BAD_REQUEST),
        (503, ErrorKind.UNAVAILABLE),
        (504, ErrorKind.TIMEOUT),
    ],
)
def test_status_failure(status: int, kind: ErrorKind) -> None:
    error = status_failure("p", status, {"error": {"message": "no"}}, {"Retry-After": "2"})
    assert error.kind is kind
    assert error.status == status
    assert error.retry_after == 2
    assert error.detail == f"p: HTTP {status}: no"
