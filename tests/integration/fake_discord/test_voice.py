"""Step 2: voice gateway over TLS and UDP; the bot's audio is captured and decoded."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from tests.fakes.discord import FakeDiscord, dominant_frequency, opus_decoder
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.fake_discord.helpers import connect_voice, play, tone
from tests.integration.fake_discord.rtp_probe import UdpProbe

NO_DAVE = {"dave_protocol_version": 0}


@pytest.mark.parametrize("fake_discord", [{**NO_DAVE, "voice_heartbeat_ms": 300}], indirect=True)
async def test_bot_tone_is_captured_without_dave(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    _, voice, connection = await connect_voice(fake_discord, discord_clients)
    assert voice.is_connected()
    assert voice._connection.dave_protocol_version == 0
    assert connection.mode == "aead_xchacha20_poly1305_rtpsize"
    identify = await fake_discord.recorder.wait_for("voice_identify")
    assert identify.data["max_dave"] == 1
    beat = await fake_discord.recorder.wait_for("voice_heartbeat")
    assert beat.data["guild_id"] == fake_discord.guild.id
    await play(voice, tone(440, 1.0))
    await connection.capture.wait_for_frames(50)
    stats = connection.capture.stats
    assert stats.transport_failures == 0
    assert stats.decode_failures == 0
    assert stats.dave_frames == 0
    samples = connection.capture.mono()
    assert samples.size >= 48_000
    assert abs(dominant_frequency(samples) - 440) < 5
    assert float(abs(samples).max()) > 0.3


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_simulated_speech_reaches_the_bot_socket(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    _, voice, _ = await connect_voice(fake_discord, discord_clients)
    sim = await fake_discord.add_simulated_user("alice", channel=fake_discord.voice_channel())
    probe = UdpProbe(voice, asyncio.get_running_loop())
    try:
        stats = await sim.speak(tone(300, 0.5), realtime=False)
        await probe.wait_for_raw(25)
    finally:
        probe.close()
    assert stats.frames == 25
    assert probe.failures == 0
    packets = sorted(probe.packets, key=lambda p: p.sequence)
    assert {p.ssrc for p in packets} == {sim.ssrc}
    assert all(p.extension for p in packets)
    assert any(p.padded for p in packets)
    sequences = [p.sequence for p in packets]
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(25)]
    assert all(
        (b.timestamp - a.timestamp) & 0xFFFFFFFF == 960 for a, b in itertools.pairwise(packets)
    )
    decoder = opus_decoder()
    pcm = b"".join(decoder.decode(p.frame, fec=False) for p in packets)
    samples = np.frombuffer(pcm, dtype=np.int16).reshape(-1, 2).mean(axis=1) / 32768
    assert abs(dominant_frequency(samples) - 300) < 5
    speaking = await fake_discord.recorder.wait_for("voice_speaking")
    assert speaking.data["data"]["ssrc"] == voice._connection.ssrc
