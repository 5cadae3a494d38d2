"""Hearing users through the real discord.py client, with DAVE as Discord runs it today."""

from __future__ import annotations

import asyncio

import discord
import numpy as np
import pytest

from openclaw_voice.audio.packets import OpusPacket
from openclaw_voice.discord.receive import OPUS_SILENCE_FRAME
from openclaw_voice.discord.voice_client import ListeningVoiceClient
from openclaw_voice.ops.metrics import Metrics
from tests.fakes.discord import (
    FakeDiscord,
    SimulatedUser,
    dominant_frequency,
    encode_pcm,
    opus_decoder,
)
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.fake_discord.helpers import VoiceBot, tone


class CollectingSink:
    def __init__(self) -> None:
        self.packets: dict[int, list[OpusPacket]] = {}
        self.left: list[int] = []
        self._changed = asyncio.Event()

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        self.packets.setdefault(user_id, []).append(packet)
        self._changed.set()

    def on_user_left(self, user_id: int) -> None:
        self.left.append(user_id)
        self._changed.set()

    async def wait_until(self, done: object, within: float = 15) -> None:
        assert callable(done)
        async with asyncio.timeout(within):
            while not done():
                self._changed.clear()
                await self._changed.wait()


async def join_listening(
    fake: FakeDiscord, clients: ClientRunner, names: list[str]
) -> tuple[ListeningVoiceClient, list[SimulatedUser], CollectingSink]:
    channel = fake.voice_channel()
    sims = [await fake.add_simulated_user(name, channel=channel) for name in names]
    bot = await clients.start(VoiceBot(**clients.client_kwargs()))
    voice_channel = bot.get_channel(channel.id)
    assert isinstance(voice_channel, discord.VoiceChannel)
    voice = await asyncio.wait_for(
        voice_channel.connect(cls=ListeningVoiceClient, timeout=10, self_deaf=False), 15
    )
    assert isinstance(voice, ListeningVoiceClient)
    sink = CollectingSink()
    voice.listen(sink)
    if fake.voice.dave_protocol_version:
        call = fake.voice.calls[channel.id]
        await call.wait_for_group({fake.world.bot.id, *(sim.user.id for sim in sims)})
        await fake.recorder.wait_for(
            "dave_transition_executed", lambda e: e.data["channel_id"] == channel.id
        )
    return voice, sims, sink


def decoded_frequency(packets: list[OpusPacket]) -> float:
    decoder = opus_decoder()
    ordered = sorted(packets, key=lambda p: p.sequence)
    pcm = b"".join(decoder.decode(p.payload, fec=False) for p in ordered)
    samples = np.frombuffer(pcm, dtype=np.int16).reshape(-1, 2).mean(axis=1) / 32768
    return dominant_frequency(samples)


@pytest.mark.parametrize(
    "fake_discord", [{"dave_protocol_version": 1}, {"dave_protocol_version": 0}], indirect=True
)
async def test_each_user_is_heard_separately(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice, bob, carol), sink = await join_listening(
        fake_discord, discord_clients, ["alice", "bob", "carol"]
    )
    frequencies = {alice: 300.0, bob: 450.0, carol: 600.0}
    await asyncio.gather(
        *(sim.speak(tone(hz, 0.6), realtime=True) for sim, hz in frequencies.items())
    )
    users = {sim.user.id: sim for sim in frequencies}
    try:
        await sink.wait_until(lambda: all(len(sink.packets.get(u, [])) >= 30 for u in users))
    except TimeoutError:
        counts = {u: len(sink.packets.get(u, [])) for u in users}
        raise AssertionError(f"{counts} {voice.receiver.stats.snapshot()}") from None
    for user_id, sim in users.items():
        assert abs(decoded_frequency(sink.packets[user_id]) - frequencies[sim]) < 5
    stats = voice.receiver.stats.snapshot()
    assert stats.get("transport_decrypt", 0) == 0
    assert stats.get("dave_decrypt", 0) == 0


async def test_garbage_and_strangers_do_not_stop_hearing(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,), sink = await join_listening(fake_discord, discord_clients, ["alice"])
    faults = fake_discord.controls.packets
    faults.malformed = 20
    faults.unknown_ssrc = 20
    faults.rtcp = 20
    await alice.speak(tone(300, 1.0), realtime=True)
    await sink.wait_until(lambda: len(sink.packets.get(alice.user.id, [])) >= 25)
    stats = voice.receiver.stats.snapshot()
    assert stats.get("malformed", 0) + stats.get("transport_decrypt", 0) > 0
    assert stats.get("ignored", 0) > 0
    assert abs(decoded_frequency(sink.packets[alice.user.id]) - 300) < 5


async def test_an_epoch_change_while_someone_talks_loses_at_most_a_few_frames(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    voice, (alice,), sink = await join_listening(fake_discord, discord_clients, ["alice"])
    talking = asyncio.create_task(alice.speak(tone(300, 3.0), realtime=True))
    await sink.wait_until(lambda: len(sink.packets.get(alice.user.id, [])) >= 25)
    epoch_changes = len(fake_discord.recorder.of_kind("dave_transition_executed"))
    await fake_discord.add_simulated_user("bob", channel=fake_discord.voice_channel())
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: len(fake_discord.recorder.of_kind("dave_transition_executed")) > epoch_changes,
    )
    sent = await talking
    await sink.wait_until(lambda: len(sink.packets[alice.user.id]) >= sent.frames - 5)
    stats = voice.receiver.stats.snapshot()
    lost_to_dave = sum(count for reason, count in stats.items() if reason.startswith("dave_"))
    assert lost_to_dave <= 5, stats


async def test_hearing_resumes_after_a_garbage_commit(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    _, (alice,), sink = await join_listening(fake_discord, discord_clients, ["alice"])
    call = fake_discord.voice.calls[fake_discord.voice_channel().id]
    epoch = call.epoch
    await call.inject_invalid_commit(fake_discord.world.bot.id)
    await fake_discord.recorder.wait_for("dave_invalid_commit")  # op 31: the bot starts over
    commit = await fake_discord.recorder.wait_for(
        "dave_commit", lambda e: e.data["epoch"] == epoch + 1
    )
    await fake_discord.recorder.wait_for(
        "dave_transition_executed",
        lambda e: e.data["transition_id"] == commit.data["transition_id"],
    )
    before = len(sink.packets.get(alice.user.id, []))
    await alice.speak(tone(300, 1.0), realtime=True)
    await sink.wait_until(lambda: len(sink.packets.get(alice.user.id, [])) - before >= 45)
    assert abs(decoded_frequency(sink.packets[alice.user.id][before:]) - 300) < 5


async def test_media_before_the_bots_key_ratchet_is_dropped_counted_then_heard(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    """Alice and Bob already share a DAVE group; the bot joins and its Welcome is held, so
    Alice's media under the new epoch reaches it before it has her key ratchet
    (davey's NoDecryptorForUser). Those frames are dropped and counted, nothing breaks,
    and once the Welcome lands and the transition executes her speech is heard."""
    fake = fake_discord
    channel = fake.voice_channel()
    alice = await fake.add_simulated_user("alice", channel=channel)
    bob = await fake.add_simulated_user("bob", channel=channel)
    call = fake.voice.calls[channel.id]
    await call.wait_for_group({alice.user.id, bob.user.id})
    bot_id = fake.world.bot.id
    call.hold_welcomes(bot_id)

    bot = await discord_clients.start(VoiceBot(**discord_clients.client_kwargs()))
    voice_channel = bot.get_channel(channel.id)
    assert isinstance(voice_channel, discord.VoiceChannel)
    voice = await asyncio.wait_for(
        voice_channel.connect(cls=ListeningVoiceClient, timeout=10, self_deaf=False), 15
    )
    assert isinstance(voice, ListeningVoiceClient)
    metrics = Metrics()
    voice.receiver.metrics = metrics
    sink = CollectingSink()
    voice.listen(sink)
    held = await fake.recorder.wait_for("dave_welcome_held", lambda e: e.data["user_id"] == bot_id)
    assert alice.dave is not None
    assert alice.dave.ready  # she has moved to the new epoch

    early = encode_pcm(tone(300, 0.4))  # 20 frames: fewer than a run that asks to rejoin
    await alice.speak_opus([*early, OPUS_SILENCE_FRAME], realtime=False)
    # DAVE leaves Opus silence unencrypted, so it is delivered: every frame before it has
    # been through the receiver by then (one SSRC is handled in arrival order).
    await sink.wait_until(lambda: len(sink.packets.get(alice.user.id, [])) == 1)
    assert sink.packets[alice.user.id][0].payload == OPUS_SILENCE_FRAME
    stats = voice.receiver.stats.snapshot()
    assert stats.get("dave_no_decryptor", 0) == len(early), stats
    dropped = metrics.registry.get_sample_value
    assert dropped("audio_frames_dropped_total", {"reason": "dave_no_decryptor"}) == len(early)
    assert "rejoin_requested" not in stats

    assert await call.release_welcomes(bot_id) == 1
    await fake.recorder.wait_for(
        "dave_transition_executed",
        lambda e: e.data["transition_id"] == held.data["transition_id"],
    )
    before = len(sink.packets[alice.user.id])
    later = encode_pcm(tone(450, 1.0))
    await alice.speak_opus(later, realtime=False)
    await sink.wait_until(lambda: len(sink.packets[alice.user.id]) - before == len(later))
    assert abs(decoded_frequency(sink.packets[alice.user.id][before:]) - 450) < 5
    assert voice.is_connected()
    stats = voice.receiver.stats.snapshot()
    lost = {reason: n for reason, n in stats.items() if reason.startswith("dave_")}
    assert lost == {"dave_no_decryptor": len(early)}  # nothing more was lost
    delivered = metrics.registry.get_sample_value
    assert delivered("audio_frames_processed_total", {"format": "opus"}) == 1 + len(later)
