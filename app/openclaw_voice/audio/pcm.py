"""PCM audio as it crosses module seams: signed 16-bit little-endian, interleaved."""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_SAMPLE = 2
STT_SAMPLE_RATE = 16_000
DISCORD_SAMPLE_RATE = 48_000
DISCORD_CHANNELS = 2


@dataclass(frozen=True)
class PcmAudio:
    """A block of s16le PCM: a whole utterance for STT, or one chunk of a TTS stream."""

    data: bytes
    sample_rate: int
    channels: int = 1

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.channels <= 0:
            raise ValueError(f"bad PCM format: {self.sample_rate} Hz, {self.channels} ch")
        if len(self.data) % (BYTES_PER_SAMPLE * self.channels):
            raise ValueError("PCM data length is not a whole number of frames")

    @property
    def frames(self) -> int:
        return len(self.data) // (BYTES_PER_SAMPLE * self.channels)

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate
