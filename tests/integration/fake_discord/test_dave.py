"""Step 4: DAVE for real — the fake is the MLS external sender; both directions decrypt."""

from __future__ import annotations

import asyncio

import davey
import discord
import numpy as np

from tests.fakes.discord import FakeDiscord, SimulatedUser, dominant_frequency, opus_decoder
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.fake_discord.helpers import (
    HookedVoiceClient,
    connect_voice,
    next_op,
    play,
    tone,
)
from tests.integration.fake_discord.rtp_probe import UdpProbe


async def join_with_members(
    fake: FakeDiscord,
    clients: ClientRunner,
    names: list[str],
    cls: type[discord.VoiceClient] = discord.VoiceClient,
) -> tuple[discord.VoiceClient, list[SimulatedUser]]:
    channel = fake.voice_channel()
    sims = [await fake.add_simulated_user(name, channel=channel) for name in names]
    _, voice, connection = await connect_voice(fake, clients, cls=cls)
    call = fake.voice.calls[channel.id]
    expected = {fake.world.bot.id, *(sim.user.id for sim in sims)}
    await call.wait_for_group(expected)
    await fake.recorder.wait_for(
        "dave_transition_executed", lambda e: e.data["channel_id"] == channel.id
    )
    assert connection.dave_version == 1
    return voice, sims


def bot_decrypts(voice: discord.VoiceClient, sim: SimulatedUser, probe: UdpProbe) -> bytes:
    """Decrypt the sim's frames with the bot's own DAVE session; returns decoded PCM."""
    session = voice._connection.dave_session
    assert session is not None
    decoder = opus_decoder()
    frames = sorted((p for p in probe.packets if p.ssrc == sim.ssrc), key=lambda p: p.sequence)
    assert frames
    pcm = b""
    for packet in frames:
        assert packet.frame.endswith(b"\xfa\xfa"), "the frame is not DAVE-encrypted"
        opus = session.decrypt(sim.user.id, davey.MediaType.audio, packet.frame)
        pcm += decoder.decode(opus, fec=False)
    return pcm


def frequency(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).reshape(-1, 2).mean(axis=1) / 32768
    return dominant_frequency(samples)


async def test_dave_handshake_and_both_directions(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,) = await join_with_members(fake_discord, discord_clients, ["alice"])
    state = voice._connection
    assert state.dave_protocol_version == 1
    assert state.dave_session is not None
    assert state.dave_session.ready
    assert state.can_encrypt
    assert alice.dave is not None
    assert alice.dave.epoch == state.dave_session.epoch
    assert sorted(state.dave_session.get_user_ids()) == sorted(
        [str(fake_discord.world.bot.id), str(alice.user.id)]
    ) or sorted(int(u) for u in state.dave_session.get_user_ids()) == sorted(
        [fake_discord.world.bot.id, alice.user.id]
    )

    # bot → fake: the tone is DAVE-encrypted by discord.py and decrypted by alice's session
    connection = fake_discord.voice.connections[fake_discord.guild.id]
    await play(voice, tone(440, 1.0))
    await connection.capture.wait_for_frames(50)
    stats = connection.capture.stats
    assert stats.dave_frames >= 45
    assert stats.dave_failures == 0
    assert abs(dominant_frequency(connection.capture.mono()) - 440) < 5

    # fake → bot: alice's speech decrypts with the bot's own DAVE session
    probe = UdpProbe(voice, asyncio.get_running_loop())
    try:
        sent = await alice.speak(tone(300, 0.4), realtime=False)
        await probe.wait_for_raw(20)
    finally:
        probe.close()
    assert sent.dave_encrypted == 20
    assert abs(frequency(bot_decrypts(voice, alice, probe)) - 300) < 5


async def test_member_leaving_moves_to_a_new_epoch(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice, bob) = await join_with_members(fake_discord, discord_clients, ["alice", "bob"])
    session = voice._connection.dave_session
    assert session is not None
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    epoch_before = call.epoch
    assert session.epoch == epoch_before

    await fake_discord.move_simulated_user(bob, None)
    await call.wait_for_group({fake_discord.world.bot.id, alice.user.id})
    commit = await fake_discord.recorder.wait_for(
        "dave_commit", lambda e: e.data["epoch"] == epoch_before + 1
    )
    # the bot committed the removal itself (op 28) and everyone moved on
    assert commit.data["sender"] == fake_discord.world.bot.id
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: e.data["transition_id"] == commit.data["transition_id"],
    )
    assert session.epoch == epoch_before + 1
    assert alice.dave is not None
    assert alice.dave.epoch == epoch_before + 1

    connection = fake_discord.voice.connections[fake_discord.guild.id]
    connection.capture.clear()
    await play(voice, tone(440, 0.6))
    await connection.capture.wait_for_frames(30)
    assert connection.capture.stats.dave_failures == 0
    assert abs(dominant_frequency(connection.capture.mono()) - 440) < 5

    probe = UdpProbe(voice, asyncio.get_running_loop())
    try:
        await alice.speak(tone(300, 0.2), realtime=False)
        await probe.wait_for_raw(10)
    finally:
        probe.close()
    assert abs(frequency(bot_decrypts(voice, alice, probe)) - 300) < 10


async def capture_tone(fake: FakeDiscord, voice: discord.VoiceClient, seconds: float = 0.6) -> None:
    """The bot plays a 440 Hz tone; the fake must capture it DAVE-encrypted and decode it."""
    connection = fake.voice.connections[fake.guild.id]
    connection.capture.clear()
    await play(voice, tone(440, seconds))
    await connection.capture.wait_for_frames(int(seconds * 50))
    stats = connection.capture.stats
    assert stats.dave_failures == 0
    assert stats.dave_frames >= int(seconds * 50) - 5
    assert abs(dominant_frequency(connection.capture.mono()) - 440) < 5


async def test_member_joining_later_is_added_in_a_new_epoch(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,) = await join_with_members(fake_discord, discord_clients, ["alice"])
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    epoch = call.epoch
    carol = await fake_discord.add_simulated_user("carol", channel=fake_discord.voice_channel())
    await call.wait_for_group({fake_discord.world.bot.id, alice.user.id, carol.user.id})
    commit = await fake_discord.recorder.wait_for(
        "dave_commit", lambda e: e.data["epoch"] == epoch + 1
    )
    assert commit.data["sender"] == fake_discord.world.bot.id
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: e.data["transition_id"] == commit.data["transition_id"],
    )
    assert carol.dave is not None
    assert carol.dave.ready
    session = voice._connection.dave_session
    assert session is not None
    assert session.epoch == carol.dave.epoch == epoch + 1
    probe = UdpProbe(voice, asyncio.get_running_loop())
    try:
        await carol.speak(tone(300, 0.2), realtime=False)
        await probe.wait_for_raw(10)
    finally:
        probe.close()
    assert abs(frequency(bot_decrypts(voice, carol, probe)) - 300) < 10


async def test_garbage_commit_makes_the_bot_rejoin(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,) = await join_with_members(fake_discord, discord_clients, ["alice"])
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    epoch = call.epoch
    transition_id = await call.inject_invalid_commit(fake_discord.world.bot.id)
    invalid = await fake_discord.recorder.wait_for("dave_invalid_commit")
    assert invalid.data["transition_id"] == transition_id
    # the bot re-created its session; the fake replaced its leaf (alice commits this time)
    commit = await fake_discord.recorder.wait_for(
        "dave_commit", lambda e: e.data["epoch"] == epoch + 1
    )
    assert commit.data["sender"] == alice.user.id
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: e.data["transition_id"] == commit.data["transition_id"],
    )
    await capture_tone(fake_discord, voice)


async def test_revoked_proposal_is_not_committed(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,) = await join_with_members(fake_discord, discord_clients, ["alice"])
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    epoch = call.epoch
    ghost = davey.DaveSession(1, 4242, fake_discord.voice_channel().id)
    await call.propose_and_revoke(ghost.get_serialized_key_package())
    ignored = await fake_discord.recorder.wait_for("dave_commit_ignored")
    assert ignored.data["sender"] == fake_discord.world.bot.id
    assert call.epoch == epoch
    await capture_tone(fake_discord, voice)
    # the group still evolves normally afterwards
    carol = await fake_discord.add_simulated_user("carol", channel=fake_discord.voice_channel())
    await call.wait_for_group({fake_discord.world.bot.id, alice.user.id, carol.user.id})
    assert call.epoch == epoch + 1


async def test_epoch_reset_rebuilds_the_group(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,) = await join_with_members(fake_discord, discord_clients, ["alice"])
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    await call.reset_epoch()
    await call.wait_for_group({fake_discord.world.bot.id, alice.user.id})
    assert call.epoch == 1
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: (
            e.data["transition_id"]
            == fake_discord.recorder.of_kind("dave_commit")[-1].data["transition_id"]
        ),
    )
    session = voice._connection.dave_session
    assert session is not None
    assert session.epoch == 1
    await capture_tone(fake_discord, voice)


async def test_lone_bot_sends_passthrough_until_someone_joins(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    _, voice, connection = await connect_voice(fake_discord, discord_clients)
    assert connection.dave_version == 1
    await fake_discord.recorder.wait_for("dave_key_package")
    state = voice._connection
    assert state.dave_session is not None
    assert not state.can_encrypt  # no group with a single member
    await play(voice, tone(440, 0.4))
    await connection.capture.wait_for_frames(20)
    assert connection.capture.stats.passthrough_frames >= 20
    assert connection.capture.stats.dave_frames == 0
    # a human joins: the bot creates the group (its op 28) and encrypts from then on
    alice = await fake_discord.add_simulated_user("alice", channel=fake_discord.voice_channel())
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    await call.wait_for_group({fake_discord.world.bot.id, alice.user.id})
    commit = fake_discord.recorder.of_kind("dave_commit")[-1]
    assert commit.data["sender"] == fake_discord.world.bot.id
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: e.data["transition_id"] == commit.data["transition_id"],
    )
    await capture_tone(fake_discord, voice, 0.4)


async def test_downgrade_to_passthrough(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,) = await join_with_members(
        fake_discord, discord_clients, ["alice"], cls=HookedVoiceClient
    )
    assert isinstance(voice, HookedVoiceClient)
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    transition_id = await call.downgrade()
    prepare = await next_op(voice, 21)
    assert prepare["d"] == {"transition_id": transition_id, "protocol_version": 0}
    execute = await next_op(voice, 22)  # the hook runs after discord.py handled it
    assert execute["d"]["transition_id"] == transition_id
    state = voice._connection
    assert state.dave_protocol_version == 0
    assert not state.can_encrypt
    connection = fake_discord.voice.connections[fake_discord.guild.id]
    connection.capture.clear()
    await play(voice, tone(440, 0.4))
    await connection.capture.wait_for_frames(20)
    assert connection.capture.stats.dave_frames == 0
    assert connection.capture.stats.passthrough_frames >= 20
    assert abs(dominant_frequency(connection.capture.mono()) - 440) < 5
    probe = UdpProbe(voice, asyncio.get_running_loop())
    try:
        sent = await alice.speak(tone(300, 0.2), realtime=False)
        await probe.wait_for_raw(10)
    finally:
        probe.close()
    assert sent.dave_encrypted == 0
    session = state.dave_session
    assert session is not None
    decoder = opus_decoder()
    pcm = b""
    for packet in sorted(probe.packets, key=lambda p: p.sequence):
        assert not packet.frame.endswith(b"\xfa\xfa")
        # the bot's session passes unencrypted frames through during/after the downgrade
        opus = session.decrypt(alice.user.id, davey.MediaType.audio, packet.frame)
        pcm += decoder.decode(opus, fec=False)
    assert abs(frequency(pcm) - 300) < 10
