"""Deterministic test speech for the TTS fakes: a tone per text, cut into odd-sized chunks."""

from __future__ import annotations

import io
import itertools
import wave

import numpy as np

SAMPLES_PER_CHAR = 12
ODD_CHUNK_SIZES = (1, 7, 333, 1021, 5, 2047, 3)


def tone_for(text: str, sample_rate: int) -> bytes:
    """s16le mono audio whose length and pitch follow ``text`` (same text → same bytes)."""
    frames = max(1, len(text)) * SAMPLES_PER_CHAR
    frequency = 200 + sum(map(ord, text)) % 600
    t = np.arange(frames) / sample_rate
    return (np.sin(2 * np.pi * frequency * t) * 8000).astype("<i2").tobytes()


def odd_chunks(data: bytes, sizes: tuple[int, ...] = ODD_CHUNK_SIZES) -> list[bytes]:
    """``data`` cut at sizes that split samples, as a network would."""
    chunks: list[bytes] = []
    position = 0
    for size in itertools.cycle(sizes):
        if position >= len(data):
            return chunks
        chunks.append(data[position : position + size])
        position += size
    raise AssertionError("unreachable")  # pragma: no cover


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """``pcm`` in a WAV container, as Google's LINEAR16 returns it."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(sample_rate)
        clip.writeframes(pcm)
    return buffer.getvalue()
