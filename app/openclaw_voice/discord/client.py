"""The bot's gateway client: logs in, serves the slash commands, routes voice events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import discord
import structlog
from discord import app_commands

from openclaw_voice.discord.sessions import VoiceSessionManager
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.status import AppStatus

log = structlog.get_logger(__name__)


def bot_intents() -> discord.Intents:
    """Only what a voice bot needs; no privileged intents (members, message content)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


InteractionGate = Callable[[discord.Interaction], Awaitable[bool]]


async def _always(interaction: discord.Interaction) -> bool:
    return True


class GatedCommandTree(app_commands.CommandTree):
    """A command tree that answers only interactions its gate lets through.

    Both blue-green slots receive every interaction; the gate lets only the active slot
    answer, and only once per interaction.
    """

    gate: InteractionGate = staticmethod(_always)

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await self.gate(interaction)


class VoiceBot(discord.Client):
    """discord.py client that mirrors its gateway state into :class:`AppStatus`."""

    def __init__(
        self,
        status: AppStatus,
        *,
        connector: aiohttp.BaseConnector | None,
        metrics: Metrics | None = None,
        command_guild_id: int | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__(intents=bot_intents(), connector=connector, **client_options)
        self._status = status
        self._metrics = metrics
        self._command_guild = discord.Object(command_guild_id) if command_guild_id else None
        self.tree = GatedCommandTree(self)
        self.connected_once = asyncio.Event()
        self.tree.on_error = self._on_command_error  # type: ignore[method-assign]
        self.sessions: VoiceSessionManager | None = None

    def attach(self, sessions: VoiceSessionManager, commands: app_commands.Group) -> None:
        """Plug in the session manager and the ``/voice`` commands (before ``start``)."""
        self.sessions = sessions
        self.tree.add_command(commands, guild=self._command_guild)

    async def sync_commands(self) -> None:
        """Register the slash commands (with the guild of DISCORD_GUILD_ID, or globally)."""
        synced = await self.tree.sync(guild=self._command_guild)
        log.info(
            "slash commands synced",
            context={
                "commands": [command.name for command in synced],
                "scope": str(self._command_guild.id) if self._command_guild else "global",
            },
        )

    def _set_connected(self, connected: bool) -> None:
        self._status.discord_connected = connected
        if self._metrics is not None:
            self._metrics.discord_gateway_connected.set(1 if connected else 0)

    def _sync_guilds(self) -> None:
        self._status.guild_ids = {guild.id for guild in self.guilds}

    async def on_ready(self) -> None:
        self._set_connected(True)
        self._sync_guilds()
        adopted = self.sessions.adopt_voice_clients() if self.sessions is not None else 0
        user = self.user
        log.info(
            "connected to Discord",
            context={
                "bot_user_id": user.id if user else None,
                "guilds": len(self.guilds),
                "voice_connections_kept": adopted,
            },
        )
        self.connected_once.set()

    async def on_resumed(self) -> None:
        self._set_connected(True)
        log.info("Discord session resumed")

    async def on_disconnect(self) -> None:
        if self._status.discord_connected:
            log.warning("disconnected from Discord; reconnecting")
            if self._metrics is not None:
                self._metrics.discord_gateway_disconnect_total.inc()
        self._set_connected(False)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self._sync_guilds()
        log.info("joined guild", guildId=str(guild.id))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self._sync_guilds()
        log.info("removed from guild", guildId=str(guild.id))
        if self.sessions is not None:
            await self.sessions.on_guild_remove(guild)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        if self.sessions is not None:
            await self.sessions.on_guild_channel_delete(channel)

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        if self.sessions is not None:
            await self.sessions.on_voice_state_update(member, before, after)

    async def _on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.name if interaction.command else "unknown"
        log.error(
            "slash command failed",
            exc_info=error,
            guildId=str(interaction.guild_id) if interaction.guild_id else None,
            userId=str(interaction.user.id),
            context={"command": command},
        )
        if self._metrics is not None:
            self._metrics.discord_command_total.labels(command=command, status="error").inc()
        text = "Sorry, something went wrong with that command."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    async def close(self) -> None:
        if self.sessions is not None:
            await self.sessions.shutdown()
        await super().close()


class ShardedVoiceBot(VoiceBot, discord.AutoShardedClient):
    """The same bot running the shards this host owns (SHARD_IDS of SHARD_COUNT).

    A guild's voice must be driven by the process that holds its shard
    (``(guild_id >> 22) % shard_count``); every host's state store rows are keyed by guild,
    so the host owning a shard rejoins exactly its guilds.
    """
