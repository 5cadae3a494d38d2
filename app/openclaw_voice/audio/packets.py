"""The receive path's seam types: Opus packets in, utterances out."""

from __future__ import annotations

from dataclasses import dataclass

from openclaw_voice.audio.pcm import PcmAudio


@dataclass(frozen=True, slots=True)
class OpusPacket:
    """One decrypted Opus payload from one speaker; arrival is time.monotonic()."""

    sequence: int
    timestamp: int
    payload: bytes
    arrival: float


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech from one user, 16 kHz mono, with monotonic voiced bounds."""

    user_id: int
    audio: PcmAudio
    first_voiced_at: float
    last_voiced_at: float
