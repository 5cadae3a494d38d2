"""The bot's outgoing audio as the fake received it: decoded 48 kHz PCM with timestamps."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import discord.opus
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
CHANNELS = 2
FRAME_SAMPLES = 960


@dataclass(frozen=True)
class CapturedFrame:
    """One decoded 20 ms frame: arrival (monotonic seconds), RTP fields, s16le stereo PCM."""

    arrival: float
    sequence: int
    rtp_timestamp: int
    pcm: bytes
    dave_encrypted: bool


@dataclass
class CaptureStats:
    packets: int = 0
    rtcp: int = 0
    transport_failures: int = 0
    dave_frames: int = 0
    passthrough_frames: int = 0
    dave_failures: int = 0
    decode_failures: int = 0
    silence_frames: int = 0


@dataclass
class Capture:
    """Per voice connection; frames are appended from the UDP callback on the loop."""

    frames: list[CapturedFrame] = field(default_factory=list)
    stats: CaptureStats = field(default_factory=CaptureStats)
    _waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def add(self, frame: CapturedFrame) -> None:
        self.frames.append(frame)
        count = len(self.frames)
        still = []
        for wanted, future in self._waiters:
            if future.done():
                continue
            if count >= wanted:
                future.set_result(None)
            else:
                still.append((wanted, future))
        self._waiters = still

    async def wait_for_frames(self, count: int, within: float = 10.0) -> None:
        if len(self.frames) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        try:
            await asyncio.wait_for(future, within)
        finally:
            future.cancel()

    def pcm(self) -> npt.NDArray[np.int16]:
        """All frames in RTP-timestamp order as an (n, 2) int16 array."""
        ordered = sorted(self.frames, key=lambda f: (f.rtp_timestamp, f.sequence))
        if not ordered:
            return np.zeros((0, CHANNELS), dtype=np.int16)
        data = b"".join(frame.pcm for frame in ordered)
        return np.frombuffer(data, dtype=np.int16).reshape(-1, CHANNELS)

    def mono(self) -> npt.NDArray[np.float64]:
        """Mono float samples in [-1, 1)."""
        stereo = self.pcm().astype(np.float64) / 32768.0
        result: npt.NDArray[np.float64] = stereo.mean(axis=1)
        return result

    def clear(self) -> None:
        self.frames.clear()
        self.stats = CaptureStats()


def dominant_frequency(samples: npt.NDArray[np.float64], rate: int = SAMPLE_RATE) -> float:
    """The frequency (Hz) of the strongest FFT bin, DC excluded."""
    if samples.size == 0:
        return 0.0
    windowed = samples * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[0] = 0.0
    freqs = np.fft.rfftfreq(samples.size, 1.0 / rate)
    return float(freqs[int(np.argmax(spectrum))])


def opus_decoder() -> discord.opus.Decoder:
    """A 48 kHz stereo Opus decoder (discord.py's constructor is untyped)."""
    if not discord.opus.is_loaded():
        discord.opus._load_default()
    return discord.opus.Decoder()  # type: ignore[no-untyped-call]


def now() -> float:
    return time.monotonic()
