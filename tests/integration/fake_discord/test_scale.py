"""Several guilds, channels and simulated users at once; voice websocket notifications."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import discord
import numpy as np
import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner
from tests.fakes.discord.simulated import read_wav
from tests.integration.fake_discord.helpers import HookedVoiceClient, VoiceBot, next_op, tone
from tests.integration.fake_discord.rtp_probe import UdpProbe

THREE_GUILDS = {"guilds": 3, "seed": 99}


@pytest.mark.parametrize("fake_discord", [THREE_GUILDS], indirect=True)
async def test_three_guilds_with_a_speaker_each(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(VoiceBot(**discord_clients.client_kwargs()))
    guilds = list(fake_discord.world.guilds.values())
    assert len(bot.guilds) == 3
    sims = []
    voices = []
    for index, guild in enumerate(guilds):
        channel = guild.voice_channels()[index % 2]
        sims.append(
            await fake_discord.add_simulated_user(f"user-{index}", guild=guild, channel=channel)
        )
        client_channel = bot.get_channel(channel.id)
        assert isinstance(client_channel, discord.VoiceChannel)
        voice: discord.VoiceProtocol = await client_channel.connect(timeout=10)
        assert isinstance(voice, discord.VoiceClient)
        voices.append(voice)
    for guild, sim in zip(guilds, sims, strict=True):
        await fake_discord.voice.wait_for_connection(guild.id)
        call = fake_discord.voice.calls[fake_discord.voice.connections[guild.id].channel_id]
        await call.wait_for_group({fake_discord.world.bot.id, sim.user.id})
    probes = [UdpProbe(voice, asyncio.get_running_loop()) for voice in voices]
    try:
        await asyncio.gather(*(sim.speak(tone(300, 0.2), realtime=True) for sim in sims))
        for probe in probes:
            await probe.wait_for_raw(10)
    finally:
        for probe in probes:
            probe.close()
    for probe, sim in zip(probes, sims, strict=True):
        assert {p.ssrc for p in probe.packets} == {sim.ssrc}
    assert len({sim.ssrc for sim in sims}) == 3
    assert len(fake_discord.voice.calls) == 3


async def test_voice_websocket_notifications(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(VoiceBot(**discord_clients.client_kwargs()))
    channel = bot.get_channel(fake_discord.voice_channel().id)
    assert isinstance(channel, discord.VoiceChannel)
    voice = await channel.connect(timeout=10, cls=HookedVoiceClient)
    assert isinstance(voice, HookedVoiceClient)
    await fake_discord.voice.wait_for_connection(fake_discord.guild.id)
    sim = await fake_discord.add_simulated_user("alice", channel=fake_discord.voice_channel())
    connect = await next_op(voice, 11)
    assert connect["d"]["user_ids"] == [str(sim.user.id)]
    await sim.speak(tone(300, 0.06), realtime=False)
    speaking = await next_op(voice, 5)
    assert speaking["d"] == {"user_id": str(sim.user.id), "ssrc": sim.ssrc, "speaking": 1}
    await fake_discord.move_simulated_user(sim, None)
    disconnect = await next_op(voice, 13)
    assert disconnect["d"] == {"user_id": str(sim.user.id)}


def test_wav_input(tmp_path: Path) -> None:
    pcm = tone(440, 0.1)
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(pcm)
    assert read_wav(stereo) == pcm
    samples = np.frombuffer(pcm, dtype=np.int16)[::2].copy()
    mono = tmp_path / "mono.wav"
    with wave.open(str(mono), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(samples.tobytes())
    assert read_wav(mono) == np.repeat(samples, 2).tobytes()
