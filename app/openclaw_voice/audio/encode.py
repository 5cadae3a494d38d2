"""PCM chunks at any rate to Discord's 20 ms 48 kHz stereo s16le frames, level-normalised."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import soxr

from openclaw_voice.audio.pcm import DISCORD_CHANNELS, DISCORD_SAMPLE_RATE, PcmAudio

FloatArray = npt.NDArray[np.float32]

FRAME_SAMPLES = DISCORD_SAMPLE_RATE // 50  # 960 per channel
FRAME_BYTES = FRAME_SAMPLES * DISCORD_CHANNELS * 2  # 3,840
SILENCE_FRAME = bytes(FRAME_BYTES)


def _db(value: float) -> float:
    return float(10 ** (value / 20))


@dataclass(frozen=True, slots=True)
class LevelSettings:
    """Loudness normalisation: RMS target, gain bounds and the limiter's peak ceiling (dBFS/dB)."""

    target_rms_dbfs: float = -20.0
    max_gain_db: float = 12.0
    min_gain_db: float = -12.0
    ceiling_dbfs: float = -1.0
    floor_dbfs: float = -50.0  # frames quieter than this do not steer the gain


class Normalizer:
    """Slow RMS-tracking gain plus a per-frame peak limiter; output never exceeds the ceiling."""

    def __init__(self, settings: LevelSettings | None = None) -> None:
        s = settings or LevelSettings()
        self._target = _db(s.target_rms_dbfs)
        self._max = _db(s.max_gain_db)
        self._min = _db(s.min_gain_db)
        self._ceiling = _db(s.ceiling_dbfs)
        self._floor = _db(s.floor_dbfs)
        self._level: float | None = None
        self._gain = 1.0

    def process(self, frame: FloatArray) -> FloatArray:
        """Applies gain to one frame (samples x channels, float32 in [-1, 1])."""
        rms = math.sqrt(float(np.mean(frame * frame))) if frame.size else 0.0
        if rms > self._floor:
            self._level = rms if self._level is None else 0.8 * self._level + 0.2 * rms
        wanted = 1.0 if self._level is None else self._target / self._level
        wanted = min(self._max, max(self._min, wanted))
        peak = float(np.max(np.abs(frame))) if frame.size else 0.0
        if peak * wanted > self._ceiling:
            wanted = self._ceiling / peak
        ramp = np.linspace(self._gain, wanted, len(frame), dtype=np.float32)
        self._gain = wanted
        out = frame * ramp[:, None]
        return cast(FloatArray, np.clip(out, -self._ceiling, self._ceiling))


class FrameEncoder:
    """Resamples a stream of PcmAudio chunks (soxr) and cuts it into 3,840-byte frames."""

    def __init__(self, *, normalize: bool = True, level: LevelSettings | None = None) -> None:
        self._normalizer = Normalizer(level) if normalize else None
        self._format: tuple[int, int] | None = None
        self._resampler: soxr.ResampleStream | None = None
        self._pending = np.zeros((0, DISCORD_CHANNELS), dtype=np.float32)

    def push(self, chunk: PcmAudio) -> list[bytes]:
        """Adds one chunk; returns the whole frames now available."""
        channels = min(chunk.channels, DISCORD_CHANNELS)
        fmt = (chunk.sample_rate, channels)
        frames: list[bytes] = []
        if fmt != self._format:
            frames += self._drain_resampler()
            self._format = fmt
            self._resampler = (
                None
                if chunk.sample_rate == DISCORD_SAMPLE_RATE
                else soxr.ResampleStream(
                    chunk.sample_rate, DISCORD_SAMPLE_RATE, channels, dtype="float32"
                )
            )
        pcm = np.frombuffer(chunk.data, dtype="<i2").astype(np.float32) / np.float32(32768)
        pcm = pcm.reshape(-1, chunk.channels)
        if chunk.channels > DISCORD_CHANNELS:
            pcm = pcm.mean(axis=1, keepdims=True, dtype=np.float32)
        return frames + self._add(self._resample(pcm, last=False))

    def flush(self) -> list[bytes]:
        """Ends the stream: the resampler's tail and a final zero-padded frame."""
        frames = self._drain_resampler()
        if len(self._pending):
            pad = np.zeros((FRAME_SAMPLES - len(self._pending), DISCORD_CHANNELS), np.float32)
            self._pending = np.concatenate([self._pending, pad])
            frames += self._cut()
        return frames

    def _drain_resampler(self) -> list[bytes]:
        if self._resampler is None or self._format is None:
            return []
        empty = np.zeros((0, self._format[1]), dtype=np.float32)
        tail = self._resample(empty, last=True)
        self._resampler = None
        return self._add(tail)

    def _resample(self, pcm: FloatArray, *, last: bool) -> FloatArray:
        if self._resampler is None:
            return pcm
        return cast(FloatArray, self._resampler.resample_chunk(pcm, last=last))

    def _add(self, pcm: FloatArray) -> list[bytes]:
        if pcm.ndim == 1:
            pcm = pcm[:, None]
        if pcm.shape[1] == 1:
            pcm = np.repeat(pcm, DISCORD_CHANNELS, axis=1)
        self._pending = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        return self._cut()

    def _cut(self) -> list[bytes]:
        whole = len(self._pending) // FRAME_SAMPLES
        frames: list[bytes] = []
        for i in range(whole):
            frame = self._pending[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            if self._normalizer is not None:
                frame = self._normalizer.process(frame)
            pcm = np.clip(frame * 32768.0, -32768, 32767).astype("<i2")
            frames.append(pcm.tobytes())
        self._pending = self._pending[whole * FRAME_SAMPLES :]
        return frames


def earcon_frames(*, period: float = 1.2, level_dbfs: float = -26.0) -> list[bytes]:
    """A soft two-note "thinking" blip followed by silence, as one loopable cycle of frames."""
    rate = DISCORD_SAMPLE_RATE
    total = round(period * 50) * FRAME_SAMPLES
    out = np.zeros(total, dtype=np.float32)
    note = int(0.07 * rate)
    envelope = np.sin(np.linspace(0.0, math.pi, note, dtype=np.float32)) ** 2
    t = np.arange(note, dtype=np.float32) / rate
    for start, freq in ((0, 660.0), (int(0.09 * rate), 880.0)):
        out[start : start + note] += envelope * np.sin(2 * math.pi * freq * t)
    pcm = np.clip(out * _db(level_dbfs) * 32768.0, -32768, 32767).astype("<i2")
    stereo = np.repeat(pcm[:, None], DISCORD_CHANNELS, axis=1).tobytes()
    return [stereo[i : i + FRAME_BYTES] for i in range(0, len(stereo), FRAME_BYTES)]
