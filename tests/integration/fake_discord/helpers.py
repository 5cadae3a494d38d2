"""Shared pieces for the fake's own tests: audio signals, a voice bot, playing and waiting."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
import numpy as np
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import VoiceConnectionState

from tests.fakes.discord import FakeDiscord, VoiceConnection
from tests.fakes.discord.fixtures import ClientRunner

SAMPLE_RATE = 48_000


def tone(frequency: float, seconds: float, amplitude: float = 0.5) -> bytes:
    """s16le 48 kHz stereo sine."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    mono = (np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)
    return np.repeat(mono, 2).tobytes()


class VoiceBot(discord.Client):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(intents=discord.Intents.default(), **kwargs)  # type: ignore[arg-type]

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def connect_voice(
    fake: FakeDiscord,
    clients: ClientRunner,
    *,
    channel_index: int = 0,
    cls: type[discord.VoiceClient] = discord.VoiceClient,
) -> tuple[VoiceBot, discord.VoiceClient, VoiceConnection]:
    """Start a bot, join the fake's voice channel; returns the bot, its VoiceClient and the
    fake's side of the connection."""
    bot = await clients.start(VoiceBot(**clients.client_kwargs()))
    channel = bot.get_channel(fake.voice_channel(index=channel_index).id)
    assert isinstance(channel, discord.VoiceChannel)
    voice: discord.VoiceProtocol = await asyncio.wait_for(
        channel.connect(timeout=10, self_deaf=True, cls=cls), 15
    )
    assert isinstance(voice, discord.VoiceClient)
    connection = await fake.voice.wait_for_connection(fake.guild.id)
    return bot, voice, connection


class HookedVoiceClient(discord.VoiceClient):
    """A VoiceClient whose voice websocket messages are copied into a queue (the same
    ``hook=`` the project's receive layer uses)."""

    messages: asyncio.Queue[dict[str, Any]]

    def create_connection_state(self) -> VoiceConnectionState:
        self.messages = asyncio.Queue()
        return VoiceConnectionState(self, hook=self._hook)

    async def _hook(self, ws: DiscordVoiceWebSocket, message: dict[str, Any]) -> None:
        await self.messages.put(message)


async def next_op(voice: HookedVoiceClient, op: int) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(voice.messages.get(), 5)
        if message["op"] == op:
            return message


async def play(voice: discord.VoiceClient, pcm: bytes, within: float = 10.0) -> None:
    """Play PCM through discord.py's player thread and wait until it has finished."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def after(error: Exception | None) -> None:
        def finish() -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(None)

        loop.call_soon_threadsafe(finish)

    voice.play(discord.PCMAudio(io.BytesIO(pcm)), after=after)
    await asyncio.wait_for(done, within)
