"""Benchmark: CPU per 20 ms frame of the bot's reply encoding, by Opus complexity.

discord.py encodes every frame the bot speaks (48 kHz stereo, 128 kbit/s, FEC, 15 %
expected loss: its ``play()`` defaults), in the player thread of each voice connection; it
was the largest share of the bot's CPU per busy session (docs/benchmarks.md). This times
exactly that encoder on the same speech (espeak-ng, the TTS-like signal), at libopus'
default complexity (which discord.py keeps) and at the bot's ``REPLY_ENCODER_COMPLEXITY``,
interleaved over several rounds so that both see the same machine.

    .venv/bin/python -m bench.bench_reply_encoder [--rounds 7] [--complexity 9 5 3]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time

from bench.bench_receive_audio import speech_frames
from discord import opus

from openclaw_voice.discord.voice_client import (
    OPUS_GET_COMPLEXITY,
    REPLY_ENCODER_COMPLEXITY,
    set_encoder_complexity,
)


def default_complexity() -> int:
    encoder, value = opus.Encoder(), ctypes.c_int()  # the first encoder loads libopus
    opus._lib.opus_encoder_ctl(encoder._state, OPUS_GET_COMPLEXITY, ctypes.byref(value))
    return value.value


def microseconds_per_frame(frames: list[bytes], complexity: int) -> tuple[float, int]:
    """CPU time per frame, and the encoded bytes, for one pass with a fresh encoder."""
    encoder = opus.Encoder()  # discord.py's play() defaults
    set_encoder_complexity(encoder, complexity)
    started = time.thread_time()
    size = sum(len(encoder.encode(frame, encoder.SAMPLES_PER_FRAME)) for frame in frames)
    return (time.thread_time() - started) / len(frames) * 1e6, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--complexity", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    default = default_complexity()
    levels = args.complexity or sorted({default, REPLY_ENCODER_COMPLEXITY}, reverse=True)
    frames = speech_frames()
    times: dict[int, list[float]] = {level: [] for level in levels}
    sizes: dict[int, int] = {}
    for _ in range(args.rounds):
        for level in levels:
            micros, sizes[level] = microseconds_per_frame(frames, level)
            times[level].append(micros)
    print(f"{len(frames)} frames ({len(frames) * 0.02:.1f} s of speech), {args.rounds} rounds")
    print(f"libopus default complexity: {default}; the bot's: {REPLY_ENCODER_COMPLEXITY}")
    print("| complexity | CPU per frame, median (min-max) | share of a core per speaker | kbit/s |")
    print("|---|---|---|---|")
    for level in levels:
        median = statistics.median(times[level])
        kbps = sizes[level] * 8 / (len(frames) * 0.02) / 1000
        print(
            f"| {level} | {median:.0f} µs ({min(times[level]):.0f}-{max(times[level]):.0f}) "
            f"| {median / 20_000:.2%} | {kbps:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
