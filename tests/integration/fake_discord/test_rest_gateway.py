"""Step 1: the real discord.py client logs in, syncs commands, answers interactions."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord import app_commands

from tests.fakes.discord import FakeDiscord, RestFault
from tests.fakes.discord.fixtures import ClientRunner


class CommandBot(discord.Client):
    """A minimal bot: one slash command with an option, replying with the option's value."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(intents=discord.Intents.default(), **kwargs)  # type: ignore[arg-type]
        self.tree = app_commands.CommandTree(self)
        self.invoked = asyncio.Event()

        @self.tree.command(name="echo", description="Echo text back")
        @app_commands.describe(text="what to say")
        async def echo(interaction: discord.Interaction, text: str) -> None:
            self.invoked.set()
            await interaction.response.send_message(f"echo: {text}")

        @self.tree.command(name="slow", description="Defer, then follow up")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="done")
            followup = await interaction.followup.send("extra", wait=True)
            await followup.edit(content="extra edited")
            await followup.delete()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s before every re-IDENTIFY (Discord's identify rate limit);
        # the fake has no such limit.
        return None


async def test_login_sync_and_interaction(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(CommandBot(**discord_clients.client_kwargs()))
    assert bot.user is not None
    assert bot.user.id == fake_discord.world.bot.id
    guild = bot.get_guild(fake_discord.guild.id)
    assert guild is not None
    assert {c.id for c in guild.channels} == set(fake_discord.guild.channels)

    synced = await bot.tree.sync()
    assert sorted(c.name for c in synced) == ["echo", "slow"]
    guild_synced = await bot.tree.sync(guild=discord.Object(fake_discord.guild.id))
    assert guild_synced == []
    assert (await fake_discord.recorder.wait_for("commands_synced")).data["names"] == [
        "echo",
        "slow",
    ]

    record = await fake_discord.invoke_slash_command("echo", {"text": "hello"})
    response = await fake_discord.recorder.wait_for(
        "interaction_response", lambda e: e.data["interaction_id"] == record.id
    )
    assert response.data["type"] == 4
    assert response.data["content"] == "echo: hello"
    assert bot.invoked.is_set()


async def test_deferred_response_and_followups(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(CommandBot(**discord_clients.client_kwargs()))
    await bot.tree.sync()
    record = await fake_discord.invoke_slash_command("slow")
    deleted = await fake_discord.recorder.wait_for(
        "followup_delete", lambda e: e.data["interaction_id"] == record.id
    )
    assert deleted.data["message"] != "@original"
    assert record.callbacks[0]["type"] == 5
    assert record.original is not None
    assert record.original["content"] == "done"
    assert record.followups == {}
    assert len(record.deleted_followups) == 1
    edits = fake_discord.recorder.of_kind("followup_edit")
    assert [e.data["body"]["content"] for e in edits] == ["done", "extra edited"]


class VoiceWatcher(discord.Client):
    """Records VOICE_STATE_UPDATE events as (member id, before channel, after channel)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(intents=discord.Intents.default(), **kwargs)  # type: ignore[arg-type]
        self.updates: asyncio.Queue[tuple[int, int | None, int | None]] = asyncio.Queue()

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        await self.updates.put(
            (
                member.id,
                before.channel.id if before.channel else None,
                after.channel.id if after.channel else None,
            )
        )


async def test_humans_join_move_and_leave(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(VoiceWatcher(**discord_clients.client_kwargs()))
    first, second = fake_discord.voice_channel(index=0), fake_discord.voice_channel(index=1)
    sim = await fake_discord.add_simulated_user("alice", channel=first)
    assert await asyncio.wait_for(bot.updates.get(), 5) == (sim.user.id, None, first.id)
    await fake_discord.move_simulated_user(sim, second)
    assert await asyncio.wait_for(bot.updates.get(), 5) == (sim.user.id, first.id, second.id)
    await fake_discord.move_simulated_user(sim, None)
    assert await asyncio.wait_for(bot.updates.get(), 5) == (sim.user.id, second.id, None)
    assert fake_discord.guild.voice_states == {}


async def test_resume_after_forced_drop_replays_missed_events(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(CommandBot(**discord_clients.client_kwargs()))
    await bot.tree.sync()
    resumed = asyncio.Event()

    async def on_resumed() -> None:
        resumed.set()

    bot.on_resumed = on_resumed  # type: ignore[attr-defined]
    await fake_discord.gateway.drop(resumable=True)
    # Dispatched while the client is disconnected: must arrive through the RESUME replay.
    record = await fake_discord.invoke_slash_command("echo", {"text": "missed"})
    event = await fake_discord.recorder.wait_for("gateway_resumed")
    assert event.data["replayed"] >= 1
    await asyncio.wait_for(resumed.wait(), 10)
    response = await fake_discord.recorder.wait_for(
        "interaction_response", lambda e: e.data["interaction_id"] == record.id
    )
    assert response.data["content"] == "echo: missed"
    assert len(fake_discord.recorder.of_kind("gateway_identify")) == 1


async def test_reconnect_and_invalid_session(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(CommandBot(**discord_clients.client_kwargs()))
    await fake_discord.gateway.request_reconnect()
    await fake_discord.recorder.wait_for("gateway_resumed")
    await fake_discord.gateway.invalidate_sessions(resumable=False)
    second = await fake_discord.recorder.wait_for(
        "gateway_identify", lambda e: len(fake_discord.recorder.of_kind("gateway_identify")) == 2
    )
    assert second.data["session_id"] in fake_discord.gateway.sessions
    await fake_discord.gateway.drop(resumable=False)
    await fake_discord.recorder.wait_for("gateway_resume_rejected")
    await fake_discord.recorder.wait_for(
        "gateway_identify", lambda e: len(fake_discord.recorder.of_kind("gateway_identify")) == 3
    )
    assert bot.is_ready()


async def test_rest_rate_limit_and_server_error_are_retried(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(CommandBot(**discord_clients.client_kwargs()))
    channel = bot.get_channel(fake_discord.text_channel().id)
    assert isinstance(channel, discord.TextChannel)
    fake_discord.controls.rest.faults.append(
        RestFault(status=429, count=1, path_contains="/messages", retry_after=0.05)
    )
    message = await channel.send("transcript line")
    assert message.content == "transcript line"
    faults = fake_discord.recorder.of_kind("rest_fault")
    assert [f.data["status"] for f in faults] == [429]
    posts = [
        e for e in fake_discord.recorder.of_kind("rest") if e.data["path"].endswith("/messages")
    ]
    assert len(posts) == 2  # the 429, then the retry

    # discord.py retries a 500 once after 1 s; a 503 is raised to the caller at once.
    fake_discord.controls.rest.faults.append(
        RestFault(status=500, count=1, path_contains="/messages", method="POST")
    )
    await channel.send("after a 500")
    fake_discord.controls.rest.faults.append(
        RestFault(status=503, count=1, path_contains="/messages", method="POST")
    )
    with pytest.raises(discord.DiscordServerError):
        await channel.send("never stored")
    statuses = [f.data["status"] for f in fake_discord.recorder.of_kind("rest_fault")]
    assert statuses == [429, 500, 503]
    assert [e.data["content"] for e in fake_discord.recorder.of_kind("channel_message")] == [
        "transcript line",
        "after a 500",
    ]


async def test_slow_rest_and_guild_fetches(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(CommandBot(**discord_clients.client_kwargs()))
    fake_discord.controls.rest.delay = 0.2
    loop = asyncio.get_running_loop()
    started = loop.time()
    guild = await bot.fetch_guild(fake_discord.guild.id)
    assert loop.time() - started >= 0.2
    fake_discord.controls.rest.delay = 0.0
    assert guild.name == fake_discord.guild.name
    channel = await bot.fetch_channel(fake_discord.voice_channel().id)
    assert isinstance(channel, discord.VoiceChannel)
    member = await guild.fetch_member(fake_discord.guild.owner_id)
    assert member.id == fake_discord.guild.owner_id
    channels = await guild.fetch_channels()
    assert len(channels) == len(fake_discord.guild.channels)
    info = await bot.application_info()
    assert info.id == fake_discord.world.application_id


class GroupBot(discord.Client):
    """``/voice ask question`` and ``/voice whoami`` in one group, as the project's plugin."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(intents=discord.Intents.default(), **kwargs)  # type: ignore[arg-type]
        self.tree = app_commands.CommandTree(self)
        group = app_commands.Group(name="voice", description="Voice", guild_only=True)

        @group.command(name="ask", description="Ask")
        async def ask(interaction: discord.Interaction, question: str, loud: bool = False) -> None:
            await interaction.response.send_message(f"{question}|{loud}", ephemeral=True)

        @group.command(name="whoami", description="Who am I")
        async def whoami(interaction: discord.Interaction) -> None:
            member = interaction.user
            assert isinstance(member, discord.Member)
            channel = member.voice.channel.id if member.voice and member.voice.channel else None
            admin = member.guild_permissions.manage_guild
            roles = sorted(role.name for role in member.roles)
            await interaction.response.send_message(f"{channel}|{admin}|{','.join(roles)}")

        self.tree.add_command(group)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def test_subcommands_members_voice_and_roles(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    bot = await discord_clients.start(GroupBot(**discord_clients.client_kwargs()))
    await bot.tree.sync()
    record = await fake_discord.invoke_slash_command("voice ask", {"question": "hi", "loud": True})
    answer = await fake_discord.recorder.wait_for(
        "interaction_response", lambda e: e.data["interaction_id"] == record.id
    )
    assert answer.data["content"] == "hi|True"
    assert int(answer.data["data"]["flags"]) & 64  # ephemeral

    channel = fake_discord.voice_channel()
    sim = await fake_discord.add_simulated_user("bob", channel=channel)
    record = await fake_discord.invoke_slash_command("voice whoami", user=sim.user)
    answer = await fake_discord.recorder.wait_for(
        "interaction_response", lambda e: e.data["interaction_id"] == record.id
    )
    assert answer.data["content"] == f"{channel.id}|False|@everyone"

    await fake_discord.grant_role(sim.user, fake_discord.guild.admin_role)
    record = await fake_discord.invoke_slash_command("voice whoami", user=sim.user)
    answer = await fake_discord.recorder.wait_for(
        "interaction_response", lambda e: e.data["interaction_id"] == record.id
    )
    assert answer.data["content"] == f"{channel.id}|True|@everyone,admin"
    with pytest.raises(KeyError):
        await fake_discord.invoke_slash_command("voice nope")
