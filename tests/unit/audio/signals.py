"""Test signals generated at test time: espeak-ng speech, tones, noise, clicks, Opus packets."""

from __future__ import annotations

import functools
import subprocess

import numpy as np
import numpy.typing as npt
import soxr
from discord import opus

from openclaw_voice.audio.packets import OpusPacket

FloatArray = npt.NDArray[np.float32]
ESPEAK = "/usr/bin/espeak-ng"


@functools.cache
def _speech(text: str, rate: int) -> bytes:
    wav = subprocess.run(  # noqa: S603 (a fixed binary, our own text)
        [ESPEAK, "-v", "en-us", "-s", "160", "--stdout", text], check=True, capture_output=True
    ).stdout
    source_rate = int.from_bytes(wav[24:28], "little")
    pcm = np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], dtype="<i2")
    audio = pcm.astype(np.float32) / 32768
    return np.asarray(soxr.resample(audio, source_rate, rate), dtype=np.float32).tobytes()


def speech(text: str, rate: int = 48_000) -> FloatArray:
    """`text` spoken by espeak-ng, float32 mono at `rate`."""
    return np.frombuffer(_speech(text, rate), dtype=np.float32).copy()


def tone(freq: float, seconds: float, rate: int = 48_000, amplitude: float = 0.3) -> FloatArray:
    """A sine tone."""
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, rate: int = 48_000, amplitude: float = 0.1, seed: int = 1) -> FloatArray:
    """White noise."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(seconds * rate))).astype(np.float32)


def clicks(seconds: float, rate: int = 48_000, every: float = 0.25) -> FloatArray:
    """Short full-scale clicks at a regular interval."""
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    step = int(every * rate)
    for start in range(step // 2, len(out), step):
        out[start : start + 48] = np.hanning(48)[: len(out) - start] * 0.9
    return out


def silence(seconds: float, rate: int = 48_000) -> FloatArray:
    """Digital silence."""
    return np.zeros(int(seconds * rate), dtype=np.float32)


def to_int16(audio: FloatArray) -> npt.NDArray[np.int16]:
    """Float [-1, 1] to int16."""
    return np.clip(audio * 32768, -32768, 32767).astype(np.int16)


def opus_frames(audio48: FloatArray, *, bitrate: int = 64) -> list[bytes]:
    """20 ms Opus packets (stereo, FEC on) of 48 kHz mono float audio, last frame padded."""
    encoder = opus.Encoder(bitrate=bitrate, expected_packet_loss=0.2)
    pcm = to_int16(audio48)
    pad = (-len(pcm)) % 960
    pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
    stereo = np.repeat(pcm[:, None], 2, axis=1)
    return [encoder.encode(stereo[i : i + 960].tobytes(), 960) for i in range(0, len(pcm), 960)]


def packets(
    payloads: list[bytes], *, first_sequence: int = 0, start: float = 100.0
) -> list[OpusPacket]:
    """Packets sent in real time from `start`, one per 20 ms, sequence numbers wrapping."""
    return [
        OpusPacket((first_sequence + i) % 65536, (i * 960) % (1 << 32), p, start + i * 0.02)
        for i, p in enumerate(payloads)
    ]


def dominant_frequency(audio: FloatArray, rate: int) -> float:
    """The strongest frequency of a signal (Hann-windowed FFT)."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))
