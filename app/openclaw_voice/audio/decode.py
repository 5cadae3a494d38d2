"""Opus to 16 kHz mono float32 for one user: libopus decode, PLC, in-band FEC, soxr resampling."""

from __future__ import annotations

import ctypes
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import soxr
from discord import opus

from openclaw_voice.audio.pcm import DISCORD_SAMPLE_RATE, STT_SAMPLE_RATE

FloatArray = npt.NDArray[np.float32]

SAMPLES_PER_FRAME = DISCORD_SAMPLE_RATE // 50  # 20 ms at 48 kHz
MAX_FRAME_SAMPLES = DISCORD_SAMPLE_RATE * 120 // 1000  # the longest Opus packet
_CTL_GET_LAST_PACKET_DURATION = 4039


def packet_slots(payload: bytes) -> int:
    """How many 20 ms slots an Opus packet fills (1 for 2.5-20 ms packets or a bad one)."""
    try:
        frames = opus.Decoder.packet_get_nb_frames(payload)
        samples = opus.Decoder.packet_get_samples_per_frame(payload)
    except opus.OpusError:
        return 1
    slots = frames * samples // SAMPLES_PER_FRAME
    return slots if 1 <= slots <= MAX_FRAME_SAMPLES // SAMPLES_PER_FRAME else 1


class _MonoDecoder(opus.Decoder):
    """discord.py's decoder asked for one channel: libopus downmixes stereo streams itself."""

    CHANNELS = 1


class OpusStreamDecoder:
    """Decodes one user's packets in playout order; returns 20 ms-ish blocks at `output_rate`."""

    def __init__(self, *, output_rate: int = STT_SAMPLE_RATE) -> None:
        self._decoder = _MonoDecoder()  # type: ignore[no-untyped-call]
        self._lib: Any = opus._lib
        self._state: Any = self._decoder._state
        self._pcm = np.zeros(MAX_FRAME_SAMPLES, dtype=np.int16)
        self._pcm_ptr = self._pcm.ctypes.data_as(opus.c_int16_ptr)
        self._resampler = soxr.ResampleStream(
            DISCORD_SAMPLE_RATE, output_rate, 1, dtype="float32", quality="HQ"
        )
        self._silence = np.zeros(SAMPLES_PER_FRAME, dtype=np.float32)
        self.output_rate = output_rate
        self.decoded = 0
        self.recovered = 0
        self.concealed = 0
        self.errors = 0

    def _last_duration(self) -> int:
        """Samples in the last decoded or concealed packet (20 ms if unknown)."""
        value = ctypes.c_int32()
        self._lib.opus_decoder_ctl(self._state, _CTL_GET_LAST_PACKET_DURATION, ctypes.byref(value))
        return value.value or SAMPLES_PER_FRAME

    def _run(self, payload: bytes | None, frame_size: int, fec: int) -> FloatArray:
        """One opus_decode call into the shared buffer, resampled to the output rate."""
        if self._state is None:
            raise RuntimeError("decoder is closed")
        length = len(payload) if payload else 0
        samples = int(
            self._lib.opus_decode(self._state, payload, length, self._pcm_ptr, frame_size, fec)
        )
        block = self._pcm[:samples].astype(np.float32) * np.float32(1 / 32768)
        return self._resample(block)

    def _resample(self, block: FloatArray) -> FloatArray:
        """Streams a 48 kHz block through soxr."""
        return cast(FloatArray, self._resampler.resample_chunk(block))

    def decode(self, payload: bytes) -> FloatArray:
        """Decodes one packet; a corrupt one is counted and concealed instead."""
        try:
            out = self._run(payload, MAX_FRAME_SAMPLES, 0)
        except opus.OpusError:
            self.errors += 1
            return self.conceal(None)
        self.decoded += 1
        return out

    def conceal(self, next_payload: bytes | None) -> FloatArray:
        """Fills one lost packet: FEC from the next packet when it is here, else PLC."""
        frame_size = self._last_duration()
        if next_payload:
            try:
                out = self._run(next_payload, frame_size, 1)
            except opus.OpusError:
                pass
            else:
                self.recovered += 1
                return out
        try:
            out = self._run(None, frame_size, 0)
        except opus.OpusError:
            return self.silence()
        self.concealed += 1
        return out

    def silence(self) -> FloatArray:
        """20 ms of silence, passed through the resampler so the stream stays continuous."""
        return self._resample(self._silence)

    def close(self) -> None:
        """Releases the libopus state; later calls raise RuntimeError."""
        if self._state is not None:
            self._state = None
            self._decoder.__del__()
