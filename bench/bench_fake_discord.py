"""Benchmark: many concurrent voice connections, one speaking simulated user each.

The fake Discord runs in its own process (as Discord does), the bot in this one: a real
discord.py ``AutoShardedClient`` (4 shards, so the per-shard gateway send limit of 110 a
minute is not hit by 100 voice joins) joins a voice channel in every guild. Each channel
holds one simulated user who then speaks in real time: 20 ms Opus frames, DAVE-encrypted
(unless ``--no-dave``), RTP with header extension and padding, transport-encrypted.

Figures: how late the fake sends each frame against its 20 ms schedule (the fake's own
ability to keep up), how late each packet reaches the bot's UDP socket (read by
discord.py's socket-reader threads), and the fake process's CPU use.

    .venv/bin/python -m bench.bench_fake_discord --connections 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import resource
import struct
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import discord
import numpy as np
import structlog
from tests.fakes.discord import FakeDiscord, SimulatedUser, encode_pcm
from tests.fakes.discord.fixtures import restored_discord_endpoints

from openclaw_voice.discord.endpoints import DiscordEndpoints, apply_endpoints, ssl_context

FRAME_SECONDS = 0.02


def speech(seconds: float) -> bytes:
    """A voice-like test signal: a 180 Hz harmonic tone with a slow amplitude envelope."""
    t = np.arange(int(48_000 * seconds)) / 48_000
    wave = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    mono = (wave * envelope * 0.2 * 32767).astype(np.int16)
    return np.repeat(mono, 2).tobytes()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    array = np.asarray(values) * 1000.0
    return {
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


# --- the fake's process ----------------------------------------------------------------


async def _serve(pipe: Connection, connections: int, dave: bool, seed: int, shards: int) -> None:
    loop = asyncio.get_running_loop()
    fake = FakeDiscord(seed=seed, guilds=connections, dave_protocol_version=1 if dave else 0)
    fake.recommended_shards = shards
    fake.voice_update_gap = 0.05
    await fake.start()
    try:
        sims: list[SimulatedUser] = []
        for guild in fake.world.guilds.values():
            channel = guild.voice_channels()[0]
            sims.append(
                await fake.add_simulated_user(f"s-{guild.name}", guild=guild, channel=channel)
            )
        endpoints = fake.endpoints
        pipe.send(
            {
                "api_base": endpoints.api_base,
                "gateway_url": endpoints.gateway_url,
                "ca_bundle": str(endpoints.ca_bundle),
                "token": fake.token,
                "channels": [g.voice_channels()[0].id for g in fake.world.guilds.values()],
                "ssrcs": [sim.ssrc for sim in sims],
            }
        )
        command = await loop.run_in_executor(None, pipe.recv)
        assert command["op"] == "wait_connected"
        for guild, sim in zip(fake.world.guilds.values(), sims, strict=True):
            await fake.voice.wait_for_connection(guild.id, within=60)
            if dave:
                call = fake.voice.calls[guild.voice_channels()[0].id]
                await call.wait_for_group({fake.world.bot.id, sim.user.id}, within=60)
        pipe.send({"connected": True})
        command = await loop.run_in_executor(None, pipe.recv)
        assert command["op"] == "speak"
        frames = encode_pcm(speech(command["seconds"]))
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic()
        await asyncio.gather(*(sim.speak_opus(frames, realtime=True) for sim in sims))
        wall = time.monotonic() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
        pipe.send(
            {
                "frames": sum(sim.stats.frames for sim in sims),
                "dave_frames": sum(sim.stats.dave_encrypted for sim in sims),
                "lateness": [late for sim in sims for late in sim.stats.lateness],
                "starts": [(sim.stats.started_at, sim.stats.first_sequence) for sim in sims],
                "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                "wall": wall,
            }
        )
        await loop.run_in_executor(None, pipe.recv)  # "stop"
    finally:
        await fake.stop()


def serve(pipe: Connection, connections: int, dave: bool, seed: int, shards: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    discord.opus._load_default()
    asyncio.run(_serve(pipe, connections, dave, seed, shards))


# --- the bot's process -----------------------------------------------------------------


class BenchBot(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # the fake has no identify rate limit


@dataclass
class Arrivals:
    """(monotonic arrival, RTP sequence) of one SSRC's packets on one bot socket; called
    from discord.py's socket-reader thread."""

    ssrc: int
    times: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, data: bytes) -> None:
        arrival = time.monotonic()
        if len(data) < 12 or data[1] & 0x7F != 0x78:
            return
        sequence, _, ssrc = struct.unpack_from(">HII", data, 2)
        if ssrc == self.ssrc:
            with self.lock:
                self.times.append((arrival, sequence))


async def connect_with_retry(channel: discord.VoiceChannel) -> tuple[discord.VoiceClient, int]:
    """discord.py 2.7.1 can miss VOICE_SERVER_UPDATE when it lands in the one loop iteration
    in which ``_wait_for_state`` re-arms its waiter (likelier when the bot's process is
    busy); such a join times out and is retried."""
    for attempt in range(1, 4):
        try:
            voice: discord.VoiceProtocol = await channel.connect(timeout=10)
        except TimeoutError:
            continue
        assert isinstance(voice, discord.VoiceClient)
        return voice, attempt
    raise TimeoutError(f"could not join voice channel {channel.id}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receive_lateness(result: dict[str, Any], listeners: list[Arrivals]) -> list[float]:
    """Arrival minus the frame's due time in the fake's schedule (one monotonic clock)."""
    lateness: list[float] = []
    for (start, first_sequence), listener in zip(result["starts"], listeners, strict=True):
        with listener.lock:
            times = list(listener.times)
        for arrival, sequence in times:
            index = (sequence - first_sequence) & 0xFFFF
            lateness.append(max(0.0, arrival - (start + index * FRAME_SECONDS)))
    return lateness


def late_fraction(values: list[float]) -> float:
    return sum(1 for v in values if v > FRAME_SECONDS) / max(1, len(values))


async def start_bot(info: dict[str, Any], shards: int) -> tuple[BenchBot, asyncio.Task[None]]:
    endpoints = DiscordEndpoints(info["api_base"], info["gateway_url"], Path(info["ca_bundle"]))
    apply_endpoints(endpoints)
    ready = asyncio.Event()
    client = BenchBot(
        intents=discord.Intents.default(),
        shard_count=shards,
        # limit=0 as discord.py's own default: each voice websocket holds a pooled
        # connection and aiohttp's default pool of 100 stalls the 97th voice join.
        connector=aiohttp.TCPConnector(ssl=ssl_context(endpoints), limit=0),
        guild_ready_timeout=0.05,
    )

    async def on_ready() -> None:
        ready.set()

    client.on_ready = on_ready  # type: ignore[attr-defined]
    task = asyncio.create_task(client.start(info["token"]))
    await asyncio.wait_for(ready.wait(), 60)
    return client, task


async def join_all(
    client: BenchBot, channel_ids: list[int]
) -> tuple[list[discord.VoiceClient], int]:
    voices: list[discord.VoiceClient] = []
    retries = 0
    for channel_id in channel_ids:
        channel = client.get_channel(channel_id)
        assert isinstance(channel, discord.VoiceChannel)
        voice, attempts = await connect_with_retry(channel)
        retries += attempts - 1
        voices.append(voice)
    return voices, retries


async def stop_bot(client: BenchBot | None, task: asyncio.Task[None] | None) -> None:
    if client is not None:
        leaving = [vc.disconnect(force=True) for vc in list(client.voice_clients)]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*leaving, return_exceptions=True), 30)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 10)
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def run(
    connections: int, seconds: float, dave: bool, seed: int, shards: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child, connections, dave, seed, shards))
    process.start()

    async def receive(within: float) -> Any:
        return await asyncio.wait_for(loop.run_in_executor(None, parent.recv), within)

    client: BenchBot | None = None
    client_task: asyncio.Task[None] | None = None
    try:
        info = await receive(120)
        with restored_discord_endpoints():
            client, client_task = await start_bot(info, shards)
            started = time.monotonic()
            voices, retries = await join_all(client, info["channels"])
            parent.send({"op": "wait_connected"})
            await receive(120)
            connect_seconds = time.monotonic() - started
            listeners = [Arrivals(ssrc) for ssrc in info["ssrcs"]]
            for voice, listener in zip(voices, listeners, strict=True):
                voice._connection.add_socket_listener(listener)
            bot_cpu = cpu_seconds()
            parent.send({"op": "speak", "seconds": seconds})
            result = await receive(seconds + 120)
            bot_cpu = cpu_seconds() - bot_cpu
            send = result["lateness"]
            arrived = receive_lateness(result, listeners)
            return {
                "connections": connections,
                "shards": shards,
                "dave": dave,
                "cores": os.cpu_count(),
                "speech_seconds": seconds,
                "connect_seconds": connect_seconds,
                "voice_connect_retries": retries,
                "frames_sent": result["frames"],
                "frames_expected": connections * int(seconds / FRAME_SECONDS),
                "dave_encrypted_frames": result["dave_frames"],
                "packets_received": len(arrived),
                "send_lateness_ms": percentiles(send),
                "receive_lateness_ms": percentiles(arrived),
                "send_late_over_20ms_fraction": late_fraction(send),
                "receive_late_over_20ms_fraction": late_fraction(arrived),
                "fake_cpu_seconds": result["cpu"],
                "fake_wall_seconds": result["wall"],
                "fake_cpu_percent_of_one_core": 100 * result["cpu"] / result["wall"],
                "bot_process_cpu_percent_of_one_core": 100 * bot_cpu / result["wall"],
            }
    finally:
        await stop_bot(client, client_task)
        with contextlib.suppress(OSError):
            parent.send({"op": "stop"})
        process.join(30)
        if process.is_alive():
            process.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dave", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    discord.opus._load_default()
    result = asyncio.run(
        run(args.connections, args.seconds, not args.no_dave, args.seed, args.shards)
    )
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k}={v:.2f}" for k, v in value.items()))
        elif isinstance(value, float):
            print(f"{key}: {value:.3f}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
