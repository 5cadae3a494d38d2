"""Step 5: fault controls, observed at the packet level on the bot's UDP socket."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest

from tests.fakes.discord import FakeDiscord, PacketFaults, SendStats
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.fake_discord.helpers import connect_voice, tone
from tests.integration.fake_discord.rtp_probe import UdpProbe

NO_DAVE = {"dave_protocol_version": 0, "seed": 1234}
FRAMES = 60


async def send_with_faults(
    fake: FakeDiscord, clients: ClientRunner, **faults: float
) -> tuple[SendStats, UdpProbe, int]:
    _, voice, _ = await connect_voice(fake, clients)
    sim = await fake.add_simulated_user("alice", channel=fake.voice_channel())
    fake.controls.packets = PacketFaults(**faults)
    probe = UdpProbe(voice, asyncio.get_running_loop())
    try:
        stats = await sim.speak(tone(300, FRAMES * 0.02), realtime=False)
        await probe.wait_for_raw(stats.packets + stats.unknown_ssrc + stats.rtcp)
    finally:
        probe.close()
    return stats, probe, sim.ssrc


def sequences(probe: UdpProbe, ssrc: int) -> list[int]:
    return [p.sequence for p in probe.packets if p.ssrc == ssrc]


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_packet_loss(fake_discord: FakeDiscord, discord_clients: ClientRunner) -> None:
    stats, probe, ssrc = await send_with_faults(fake_discord, discord_clients, loss=20)
    assert 0 < stats.lost < FRAMES
    received = sequences(probe, ssrc)
    assert len(received) == FRAMES - stats.lost
    assert len(set(received)) == len(received)


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_duplication(fake_discord: FakeDiscord, discord_clients: ClientRunner) -> None:
    stats, probe, ssrc = await send_with_faults(fake_discord, discord_clients, duplicate=20)
    assert stats.duplicated > 0
    counts = Counter(sequences(probe, ssrc))
    assert len(counts) == FRAMES
    assert sum(1 for c in counts.values() if c == 2) == stats.duplicated


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_reordering(fake_discord: FakeDiscord, discord_clients: ClientRunner) -> None:
    stats, probe, ssrc = await send_with_faults(fake_discord, discord_clients, reorder=20)
    received = sequences(probe, ssrc)
    assert stats.reordered > 0
    assert sorted(received, key=lambda s: (s - received[0]) & 0xFFFF) != received
    inversions = sum(1 for a, b in itertools.pairwise(received) if (b - a) & 0x8000)
    assert inversions == stats.reordered
    assert len(set(received)) == len(received) == FRAMES


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_jitter(fake_discord: FakeDiscord, discord_clients: ClientRunner) -> None:
    stats, probe, ssrc = await send_with_faults(fake_discord, discord_clients, jitter=0.05)
    received = sequences(probe, ssrc)
    assert stats.jittered == FRAMES
    assert sorted(received) == sorted(set(received))
    assert len(received) == FRAMES
    assert received != sorted(received, key=lambda s: (s - min(received)) & 0xFFFF)


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_malformed_and_truncated(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    stats, probe, ssrc = await send_with_faults(
        fake_discord, discord_clients, malformed=15, truncated=15
    )
    assert stats.malformed > 0
    assert stats.truncated > 0
    assert probe.failures == stats.malformed + stats.truncated
    assert len(sequences(probe, ssrc)) == FRAMES - probe.failures


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_unknown_ssrc_and_rtcp(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    stats, probe, ssrc = await send_with_faults(
        fake_discord, discord_clients, unknown_ssrc=20, rtcp=20
    )
    assert stats.unknown_ssrc > 0
    assert stats.rtcp > 0
    rogue = [p for p in probe.packets if p.ssrc != ssrc]
    assert len(rogue) == stats.unknown_ssrc
    rtcp = [raw for raw in probe.raw if raw[1] == 200]
    assert len(rtcp) == stats.rtcp
    assert len(sequences(probe, ssrc)) == FRAMES


def test_same_seed_same_world_and_decisions() -> None:
    def run(seed: int) -> tuple[Any, ...]:
        fake = FakeDiscord(seed=seed, guilds=3)
        user = fake.world.add_member(fake.guild, "x")
        decisions = [fake.controls.chance(30) for _ in range(200)]
        return (sorted(fake.world.guilds), user.id, decisions)

    assert run(5) == run(5)
    assert run(5) != run(6)
