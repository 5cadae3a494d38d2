"""What the speech API fakes share: multipart form parsing, WAV checks, test utterances."""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from email.message import Message

import numpy as np
from aiohttp import web

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio


class UploadError(ValueError):
    """The request's form or audio is not what the real API accepts; message says why."""


class Refusal(Exception):
    """Raised by a fake's checks: ``response`` is what the real API would answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode()


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """A header such as ``Content-Type`` split into its value and parameters."""
    message = Message()
    message["content-type"] = value
    params = message.get_params() or []
    return params[0][0].lower(), {key.lower(): str(val) for key, val in params[1:]}


def parse_multipart(content_type: str, body: bytes) -> dict[str, list[FormPart]]:
    """Parse a ``multipart/form-data`` body the way a server does; UploadError if invalid."""
    mime, params = header_params(content_type)
    boundary = params.get("boundary")
    if mime != "multipart/form-data" or not boundary:
        raise UploadError(f"expected multipart/form-data with a boundary, got {content_type!r}")
    delimiter = b"\r\n--" + boundary.encode()
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2 or chunks[0] != b"" or not chunks[-1].startswith(b"--"):
        raise UploadError("malformed multipart body")
    form: dict[str, list[FormPart]] = {}
    for chunk in chunks[1:-1]:
        head, separator, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise UploadError("a multipart part has no header block")
        headers = Message()
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon:
                raise UploadError(f"bad part header {line!r}")
            headers[name.strip()] = value.strip()
        field = headers.get_param("name", header="content-disposition")
        if not isinstance(field, str):
            raise UploadError("a multipart part has no name")
        part = FormPart(field, data, headers.get_filename(), headers.get("content-type"))
        form.setdefault(field, []).append(part)
    return form


def read_wav(data: bytes, *, sample_rate: int = STT_SAMPLE_RATE, channels: int = 1) -> WavInfo:
    """Check an upload is a real PCM WAV file in the expected format."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            info = WavInfo(
                reader.getframerate(),
                reader.getnchannels(),
                reader.getsampwidth(),
                reader.getnframes(),
            )
            frames = reader.readframes(info.frames)
    except (wave.Error, EOFError) as error:
        raise UploadError(f"not a readable WAV file: {error}") from None
    if info.sample_rate != sample_rate or info.channels != channels or info.sample_width != 2:
        raise UploadError(
            f"expected {sample_rate} Hz, {channels} channel(s), 16 bit; found "
            f"{info.sample_rate} Hz, {info.channels} channel(s), {8 * info.sample_width} bit"
        )
    if info.frames == 0 or len(frames) != info.frames * channels * 2:
        raise UploadError("the WAV file holds no (or truncated) audio")
    return info


def tone(
    seconds: float = 0.5,
    *,
    frequency: float = 440.0,
    amplitude: float = 0.3,
    sample_rate: int = STT_SAMPLE_RATE,
) -> PcmAudio:
    """A sine tone standing in for speech (loud enough not to count as silence)."""
    count = round(seconds * sample_rate)
    times = np.arange(count, dtype=np.float64) / sample_rate
    samples = amplitude * 32767 * np.sin(2 * math.pi * frequency * times)
    return PcmAudio(samples.astype("<i2").tobytes(), sample_rate)


def silence(
    seconds: float = 0.5, *, noise: int = 0, sample_rate: int = STT_SAMPLE_RATE
) -> PcmAudio:
    """Digital silence, or faint noise of peak ``noise`` (s16 units) below the threshold."""
    count = round(seconds * sample_rate)
    rng = np.random.default_rng(1)
    samples = rng.integers(-noise, noise + 1, count) if noise else np.zeros(count)
    return PcmAudio(samples.astype("<i2").tobytes(), sample_rate)
