"""Speaking into Discord: streamed playback is heard, and interrupt() cuts it at once."""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import AsyncIterator

import discord
import numpy as np
from discord import opus

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.discord.playback import VoicePlayback
from openclaw_voice.discord.voice_client import (
    OPUS_GET_COMPLEXITY,
    REPLY_ENCODER_COMPLEXITY,
    ListeningVoiceClient,
)
from tests.fakes.discord import FakeDiscord, dominant_frequency
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.fake_discord.helpers import VoiceBot

RATE = 24_000


async def tone(frequency: float, seconds: float) -> AsyncIterator[PcmAudio]:
    """A TTS-like stream: 24 kHz mono in 100 ms chunks."""
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (np.sin(2 * np.pi * frequency * t) * 0.5 * 32767).astype(np.int16).tobytes()
    step = RATE // 10 * 2
    for offset in range(0, len(pcm), step):
        yield PcmAudio(pcm[offset : offset + step], RATE)


def loud(frame_pcm: bytes) -> bool:
    samples = np.frombuffer(frame_pcm, dtype=np.int16)
    return bool(samples.size) and float(np.abs(samples).max()) > 1000


async def test_playback_is_heard_and_interrupt_stops_it_within_40_ms(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(VoiceBot(**discord_clients.client_kwargs()))
    channel = bot.get_channel(fake_discord.voice_channel().id)
    assert isinstance(channel, discord.VoiceChannel)
    voice = await asyncio.wait_for(channel.connect(cls=ListeningVoiceClient, timeout=10), 15)
    assert isinstance(voice, ListeningVoiceClient)
    connection = await fake_discord.voice.wait_for_connection(fake_discord.guild.id)
    playback = VoicePlayback(voice)

    playback.say(tone(523.25, 10.0))  # ten seconds of C5, streamed as it is "synthesized"
    await connection.capture.wait_for_frames(50, within=15)
    heard = connection.capture.mono()
    assert abs(dominant_frequency(heard[-24_000:]) - 523.25) < 5
    # discord.py's encoder for this source, at the replies' complexity (not libopus' 10).
    complexity = ctypes.c_int()
    opus._lib.opus_encoder_ctl(voice.encoder._state, OPUS_GET_COMPLEXITY, ctypes.byref(complexity))
    assert complexity.value == REPLY_ENCODER_COMPLEXITY == 5

    interrupted_at = time.monotonic()
    playback.interrupt()
    # discord.py ends a stopped source with 5 silence frames; wait for them.
    async with asyncio.timeout(10):
        while connection.capture.stats.silence_frames < 5:
            await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
    last_loud = max(f.arrival for f in connection.capture.frames if loud(f.pcm))
    assert last_loud - interrupted_at <= 0.040
    assert not playback.playing
