"""``openclaw-voice demo``: the voice pipeline on the embedded offline default.

The user's speech (WAV files, or ``--say`` text spoken by the local voice) goes the way a
Discord user's would after decryption: 20 ms Opus packets → jitter buffer → decoder →
VAD → utterances → the same turn runner (local STT, agent, TTS). Each reply is written as
a WAV file and the conversation is printed with per-phase timings. No keys, no network.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import discord.opus
import numpy as np
import soxr

from openclaw_voice.agent.base import AgentSession
from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.pcm import DISCORD_SAMPLE_RATE, PcmAudio
from openclaw_voice.audio.user_stream import UserAudioStream
from openclaw_voice.pipeline.turn import TurnOutcome, TurnRequest, TurnRunner
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech

FRAME_SECONDS = 0.020
FRAME_SAMPLES = int(DISCORD_SAMPLE_RATE * FRAME_SECONDS)
DEMO_USER_ID = 1
TRAILING_SILENCE_SECONDS = 1.0


class DemoInputError(ValueError):
    """An input file that cannot be used; the message names it."""


@dataclass
class ReplyRecorder:
    """An AudioOut that collects the reply's chunks instead of playing them."""

    chunks: list[PcmAudio] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def say(self, chunks: AsyncIterable[PcmAudio]) -> object:
        async def collect() -> None:
            async for chunk in chunks:
                self.chunks.append(chunk)

        task = asyncio.create_task(collect())
        self._tasks.append(task)
        return task

    async def drain(self) -> list[PcmAudio]:
        for task in self._tasks:  # in order: the replies' sentences play in sequence
            await task
        collected, self.chunks, self._tasks = self.chunks, [], []
        return collected


def read_wav(path: Path) -> np.ndarray:
    """Any 16-bit PCM WAV as float mono at 48 kHz."""
    try:
        with wave.open(str(path), "rb") as handle:
            if handle.getsampwidth() != 2:
                raise DemoInputError(f"{path}: expected 16-bit PCM WAV")
            rate, channels = handle.getframerate(), handle.getnchannels()
            frames = handle.readframes(handle.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise DemoInputError(f"{path}: not a readable WAV file ({error})") from None
    samples = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if samples.size == 0:
        raise DemoInputError(f"{path}: contains no audio")
    return (
        soxr.resample(samples, rate, DISCORD_SAMPLE_RATE)
        if rate != DISCORD_SAMPLE_RATE
        else samples
    )


async def speak_text(voice: TextToSpeech, text: str) -> np.ndarray:
    """The local voice saying ``text``, as float mono at 48 kHz."""
    chunks = [chunk async for chunk in voice.synthesize(SpeechRequest(text))]
    if not chunks:
        raise DemoInputError(f"nothing to say for {text!r}")
    pcm = np.frombuffer(b"".join(c.data for c in chunks), dtype=np.int16).astype(np.float32)
    resampled: np.ndarray = soxr.resample(pcm / 32768, chunks[0].sample_rate, DISCORD_SAMPLE_RATE)
    return resampled


def opus_packets(samples: np.ndarray, *, start: float) -> list[OpusPacket]:
    """Discord-shaped packets: 20 ms stereo Opus frames with RTP sequence and timestamps."""
    padded = np.concatenate(
        [samples, np.zeros(int(DISCORD_SAMPLE_RATE * TRAILING_SILENCE_SECONDS), np.float32)]
    )
    padded = np.pad(padded, (0, -len(padded) % FRAME_SAMPLES))
    stereo = np.repeat((np.clip(padded, -1, 1) * 32767).astype(np.int16), 2)
    encoder = discord.opus.Encoder()
    frame_bytes = FRAME_SAMPLES * 4
    data = stereo.tobytes()
    return [
        OpusPacket(
            sequence=index & 0xFFFF,
            timestamp=(index * FRAME_SAMPLES) & 0xFFFFFFFF,
            payload=encoder.encode(data[offset : offset + frame_bytes], FRAME_SAMPLES),
            arrival=start + index * FRAME_SECONDS,
        )
        for index, offset in enumerate(range(0, len(data), frame_bytes))
    ]


def utterances_of(samples: np.ndarray) -> list[Utterance]:
    """Run the receive path on a recording, on a simulated clock (faster than real time)."""
    found: list[Utterance] = []
    stream = UserAudioStream(DEMO_USER_ID, on_utterance=found.append)
    packets = opus_packets(samples, start=0.0)
    for slot in range(len(packets) + 50):
        if slot < len(packets):
            stream.push(packets[slot])  # each packet arrives in its own 20 ms slot
        stream.tick(slot * FRAME_SECONDS)
    stream.close()
    return found


def write_wav(path: Path, chunks: Sequence[PcmAudio]) -> float:
    rate = chunks[0].sample_rate
    data = b"".join(chunk.data for chunk in chunks)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(chunks[0].channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(data)
    return len(data) / 2 / chunks[0].channels / rate


@dataclass(frozen=True)
class DemoTurn:
    transcript: str
    reply: str
    wav: Path | None
    timings: dict[str, float]
    status: str


async def run_demo(
    runner: TurnRunner,
    *,
    wavs: Sequence[Path],
    say: Sequence[str],
    out_dir: Path,
    voice: TextToSpeech,
    report: Callable[[str], None],
) -> list[DemoTurn]:
    """Every utterance of every input through the pipeline; replies written to ``out_dir``."""
    recordings = [read_wav(path) for path in wavs]
    recordings += [await speak_text(voice, text) for text in say]
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    session = AgentSession(session_key="demo")
    recorder = ReplyRecorder()
    turns: list[DemoTurn] = []
    for samples in recordings:
        for utterance in await asyncio.to_thread(utterances_of, samples):
            handed_over = time.monotonic()
            request = TurnRequest(
                guild_id=0, user_id=DEMO_USER_ID, display_name="you", utterance=utterance
            )
            outcome: TurnOutcome = await runner.run(request, session, recorder)
            chunks = await recorder.drain()
            timings = dict(outcome.timings)
            if outcome.first_audio_at is not None:
                timings["reply_starts_after"] = outcome.first_audio_at - handed_over
            wav = None
            if chunks:
                wav = out_dir / f"reply-{len(turns) + 1}.wav"
                write_wav(wav, chunks)
            turn = DemoTurn(
                outcome.transcript or "", outcome.reply.strip(), wav, timings, outcome.status
            )
            turns.append(turn)
            _report_turn(turn, report)
    if not turns:
        report("No speech was found in the input.")
    return turns


def _report_turn(turn: DemoTurn, report: Callable[[str], None]) -> None:
    report(f"you: {turn.transcript}")
    report(f"bot: {turn.reply or '(no answer: ' + turn.status + ')'}")
    phases = ", ".join(
        f"{name.replace('_', ' ')} {seconds * 1000:.0f} ms"
        for name, seconds in turn.timings.items()
        if name in ("stt", "agent_first_token", "tts_first_byte", "reply_starts_after")
    )
    if phases:
        report(f"     {phases}")
    if turn.wav is not None:
        report(f"     reply audio: {turn.wav}")
