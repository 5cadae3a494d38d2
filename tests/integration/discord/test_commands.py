"""The /voice commands end to end: the real discord.py client against the fake Discord."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openclaw_voice.app import Application
from openclaw_voice.config import load_settings
from openclaw_voice.discord.client import VoiceBot
from openclaw_voice.store.state import StateStore
from tests.fakes.discord import FakeDiscord, InteractionRecord
from tests.fakes.discord.fixtures import ClientRunner


@dataclass
class Harness:
    fake: FakeDiscord
    bot: VoiceBot
    store: StateStore
    app: Application

    async def run(
        self, name: str, *, user: Any = None, options: dict[str, Any] | None = None
    ) -> tuple[str, bool, InteractionRecord]:
        """Invoke ``/voice <name>``; return the reply text, whether ephemeral, the record."""
        record = await self.fake.invoke_slash_command(f"voice {name}", options, user=user)
        dispatched = time.monotonic()
        first = await self.fake.recorder.wait_for(
            "interaction_response", lambda e: e.data["interaction_id"] == record.id
        )
        assert time.monotonic() - dispatched < 3.0  # Discord's acknowledgement window
        flags = int((first.data["data"] or {}).get("flags") or 0)
        if first.data["type"] == 4:
            return str(first.data["content"]), bool(flags & 64), record
        assert first.data["type"] == 5  # deferred
        followup = await self.fake.recorder.wait_for(
            "followup_create", lambda e: e.data["interaction_id"] == record.id, within=30
        )
        body = followup.data["body"]
        return str(body.get("content")), bool(int(body.get("flags") or 0) & 64), record


def bot_settings(fake: FakeDiscord, state_dir: Path, **extra: str) -> Any:
    endpoints = fake.endpoints
    return load_settings(
        {
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_BASE": endpoints.api_base,
            "DISCORD_GATEWAY_URL": endpoints.gateway_url,
            "DISCORD_CA_BUNDLE": str(endpoints.ca_bundle),
            "STATE_DIR": str(state_dir),
            "EMPTY_CHANNEL_GRACE_SECONDS": "0.2",
            **extra,
        }
    )


async def start_harness(
    fake: FakeDiscord, clients: ClientRunner, state_dir: Path, *, active: bool = True, **extra: str
) -> Harness:
    app = Application(bot_settings(fake, state_dir, **extra))
    store = await StateStore.open(state_dir)
    bot = app.build_bot(store)
    await clients.start(bot)
    if active:
        await app.slot.set_role("active")
    return Harness(fake, bot, store, app)


async def stop_harness(harness: Harness, clients: ClientRunner) -> None:
    await harness.app.slot.set_role("standby")
    await clients.close()
    if harness.app.pipeline is not None:
        await harness.app.pipeline.runner.aclose()
    await harness.store.close()


@pytest.fixture
async def harness(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> AsyncIterator[Harness]:
    started = await start_harness(fake_discord, discord_clients, tmp_path)
    try:
        yield started
    finally:
        await stop_harness(started, discord_clients)


async def bot_channel(fake: FakeDiscord) -> int | None:
    state = fake.guild.voice_states.get(fake.world.bot.id)
    return state.channel_id if state else None


async def test_start_needs_the_caller_in_voice(harness: Harness) -> None:
    text, ephemeral, _ = await harness.run("start")
    assert text == "Join a voice channel first."
    assert ephemeral


async def test_start_joins_persists_and_stop_leaves(harness: Harness) -> None:
    fake = harness.fake
    channel = fake.voice_channel()
    alice = await fake.add_simulated_user("alice", channel=channel)
    text, ephemeral, _ = await harness.run("start", user=alice.user)
    assert text.startswith(f"Listening in <#{channel.id}>")
    assert not ephemeral  # everyone in the channel should know the bot listens
    assert await bot_channel(fake) == channel.id
    (presence,) = await harness.store.desired_presence()
    assert (presence.channel_id, presence.started_by) == (channel.id, alice.user.id)

    text, _, _ = await harness.run("status", user=alice.user)
    assert f"Listening in <#{channel.id}>" in text

    text, _, _ = await harness.run("stop", user=alice.user)
    assert text == "Stopped listening."
    assert await harness.store.desired_presence() == []
    text, _, _ = await harness.run("stop", user=alice.user)
    assert text == "I wasn't in a voice channel."


async def test_ask_answers_in_text(harness: Harness) -> None:
    text, ephemeral, _ = await harness.run("ask", options={"question": "What time is it?"})
    assert text.startswith("It's ")
    assert text.endswith("UTC.")
    assert not ephemeral


async def test_settings_are_for_admins_and_change_addressing(harness: Harness) -> None:
    fake = harness.fake
    bob = await fake.add_simulated_user("bob")
    text, ephemeral, _ = await harness.run("settings", user=bob.user, options={"mode": "open"})
    assert text == "Only members who can manage the server may."
    assert ephemeral
    text, ephemeral, _ = await harness.run(
        "settings", options={"mode": "wake", "wake_name": "Jarvis", "end_of_speech_ms": 700}
    )
    assert text.startswith("Mode wake, wake name Jarvis, end of speech 700 ms")
    settings = await harness.store.guild_settings(fake.guild.id)
    assert (settings.addressing_mode, settings.wake_name, settings.end_of_speech_ms) == (
        "wake",
        "Jarvis",
        700,
    )


async def test_optout_is_stored_and_applied(harness: Harness) -> None:
    fake = harness.fake
    alice = await fake.add_simulated_user("alice", channel=fake.voice_channel())
    text, ephemeral, _ = await harness.run("optout", user=alice.user)
    assert ephemeral
    assert "will not be transcribed" in text
    assert await harness.store.opted_out_users(fake.guild.id) == {alice.user.id}
    await harness.run("optin", user=alice.user)
    assert await harness.store.opted_out_users(fake.guild.id) == set()


async def test_rate_limit(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    harness = await start_harness(
        fake_discord, discord_clients, tmp_path, RATE_LIMIT_USER_PER_MINUTE="2"
    )
    try:
        for _ in range(2):
            text, _, _ = await harness.run("status")
            assert "Not in a voice channel." in text
        text, ephemeral, _ = await harness.run("status")
        assert text.startswith("Slow down a little: try again in")
        assert ephemeral
    finally:
        await stop_harness(harness, discord_clients)


async def test_bot_leaves_when_the_last_human_leaves(harness: Harness) -> None:
    fake = harness.fake
    channel = fake.voice_channel()
    alice = await fake.add_simulated_user("alice", channel=channel)
    await harness.run("start", user=alice.user)
    assert harness.bot.sessions is not None
    sessions = harness.bot.sessions
    await fake.move_simulated_user(alice, None)
    await sessions.wait_until(lambda: not sessions.sessions, within=10)
    assert await bot_channel(fake) is None
    assert await harness.store.desired_presence() == []


async def test_kicked_bot_forgets_the_channel(harness: Harness) -> None:
    fake = harness.fake
    channel = fake.voice_channel()
    alice = await fake.add_simulated_user("alice", channel=channel)
    await harness.run("start", user=alice.user)
    sessions = harness.bot.sessions
    assert sessions is not None
    await fake.kick_bot_from_voice(code=4014)
    await sessions.wait_until(lambda: not sessions.sessions, within=10)
    assert await harness.store.desired_presence() == []


async def test_state_survives_a_restart_and_the_bot_rejoins(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    channel = fake_discord.voice_channel()
    alice = await fake_discord.add_simulated_user("alice", channel=channel)
    first = await start_harness(fake_discord, discord_clients, tmp_path)
    await first.run("start", user=alice.user)
    await stop_harness(first, discord_clients)  # a restart keeps the desired presence
    assert [p.channel_id for p in await_presence(tmp_path)] == [channel.id]

    second = await start_harness(fake_discord, discord_clients, tmp_path)
    try:
        sessions = second.bot.sessions
        assert sessions is not None
        await sessions.wait_until(lambda: fake_discord.guild.id in sessions.sessions)
        assert await bot_channel(fake_discord) == channel.id
    finally:
        await stop_harness(second, discord_clients)


def await_presence(state_dir: Path) -> list[Any]:
    import sqlite3

    with sqlite3.connect(state_dir / "state.sqlite3") as db:
        rows = db.execute(
            "SELECT guild_id, channel_id FROM guild_voice_state WHERE desired = 1"
        ).fetchall()
    return [type("P", (), {"guild_id": r[0], "channel_id": r[1]}) for r in rows]


async def test_sustained_decrypt_failures_make_the_bot_rejoin(harness: Harness) -> None:
    fake = harness.fake
    channel = fake.voice_channel()
    alice = await fake.add_simulated_user("alice", channel=channel)
    await harness.run("start", user=alice.user)
    sessions = harness.bot.sessions
    assert sessions is not None
    first = sessions.sessions[fake.guild.id]
    callback = first.voice.receiver.on_decrypt_failures
    assert callback is not None
    callback()  # what the receive layer does after a run of DAVE failures
    await sessions.wait_until(
        lambda: fake.guild.id in sessions.sessions and sessions.sessions[fake.guild.id] is not first
    )
    assert await bot_channel(fake) == channel.id
    assert [p.channel_id for p in await harness.store.desired_presence()] == [channel.id]


async def test_sharded_bot_serves_its_guilds(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    harness = await start_harness(
        fake_discord, discord_clients, tmp_path, SHARD_COUNT="2", SHARD_IDS="0,1"
    )
    try:
        assert harness.bot.shard_count == 2
        identified = {e.data["shard"][0] for e in fake_discord.recorder.of_kind("gateway_identify")}
        assert identified == {0, 1}
        channel = fake_discord.voice_channel()
        alice = await fake_discord.add_simulated_user("alice", channel=channel)
        text, _, _ = await harness.run("start", user=alice.user)
        assert text.startswith("Listening in")
        assert await bot_channel(fake_discord) == channel.id
    finally:
        await stop_harness(harness, discord_clients)


async def test_start_names_the_permission_the_bot_lacks(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    view, connect, speak = 1 << 10, 1 << 20, 1 << 21
    everyone = fake_discord.guild.roles[fake_discord.guild.id]
    # Before the bot logs in: its guild (and so its permissions) arrives with GUILD_CREATE.
    everyone.permissions = (everyone.permissions | view | speak) & ~connect
    harness = await start_harness(fake_discord, discord_clients, tmp_path)
    try:
        channel = fake_discord.voice_channel()
        alice = await fake_discord.add_simulated_user("alice", channel=channel)
        text, ephemeral, _ = await harness.run("start", user=alice.user)
        assert text == f"I need the Connect permission in <#{channel.id}>."
        assert ephemeral
        assert await bot_channel(fake_discord) is None
    finally:
        await stop_harness(harness, discord_clients)
