"""The simulated speakers' questions: synthesized once per process, Opus-encoded once, reused.

The local neural voice (the ``local`` extra) speaks a few questions; each becomes 48 kHz
stereo PCM with 100 ms of trailing silence (a Discord client sends a few silent frames
when its user stops), its pre-encoded 20 ms Opus frames, and the index of its last
voiced frame (where "the user stopped speaking" is measured from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.local import LocalTextToSpeech
from tests.fakes.discord import encode_pcm

FRAME_SAMPLES = 960  # 20 ms at 48 kHz
VOICED_DBFS = -40.0
QUESTION_TEXTS = (
    "What is the weather like in Paris today?",
    "Turn on the lights in the kitchen please.",
    "When does my next meeting start?",
    "Add milk and eggs to the shopping list.",
)


@dataclass(frozen=True)
class Clip:
    text: str
    frames: list[bytes]  # Opus, 20 ms each
    last_voiced: int  # index of the last frame louder than VOICED_DBFS

    @property
    def seconds(self) -> float:
        return len(self.frames) * 0.02


_clips: list[Clip] = []


def last_voiced_frame(mono: np.ndarray) -> int:
    """Index of the last 20 ms frame whose RMS is above VOICED_DBFS (mono float, 48 kHz)."""
    count = len(mono) // FRAME_SAMPLES
    frames = mono[: count * FRAME_SAMPLES].reshape(count, FRAME_SAMPLES)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    voiced = np.nonzero(rms > 10 ** (VOICED_DBFS / 20))[0]
    if not len(voiced):
        raise ValueError("the clip has no voiced frame")
    return int(voiced[-1])


async def question_clips() -> list[Clip]:
    """The questions as clips (synthesized on first use; a model load of about a second)."""
    if _clips:
        return _clips
    voice = LocalTextToSpeech()
    try:
        for text in QUESTION_TEXTS:
            chunks = [chunk async for chunk in voice.synthesize(SpeechRequest(text))]
            rate = chunks[0].sample_rate
            pcm = np.frombuffer(b"".join(c.data for c in chunks), dtype=np.int16)
            mono = soxr.resample(pcm.astype(np.float32) / 32768, rate, 48_000)
            mono = np.concatenate([np.clip(mono, -1, 1), np.zeros(5 * FRAME_SAMPLES)])
            stereo = np.repeat((mono * 32767).astype(np.int16), 2).tobytes()
            _clips.append(Clip(text, encode_pcm(stereo), last_voiced_frame(mono)))
    finally:
        await voice.aclose()
    return _clips
