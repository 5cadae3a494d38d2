"""The bot's gateway client: logs in, keeps the connection state the ops server reports."""

from __future__ import annotations

import aiohttp
import discord
import structlog

from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.status import AppStatus

log = structlog.get_logger(__name__)


def bot_intents() -> discord.Intents:
    """Only what a voice bot needs; no privileged intents (members, message content)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


class VoiceBot(discord.Client):
    """discord.py client that mirrors its gateway state into :class:`AppStatus`."""

    def __init__(
        self,
        status: AppStatus,
        *,
        connector: aiohttp.BaseConnector | None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(intents=bot_intents(), connector=connector)
        self._status = status
        self._metrics = metrics

    def _set_connected(self, connected: bool) -> None:
        self._status.discord_connected = connected
        if self._metrics is not None:
            self._metrics.discord_gateway_connected.set(1 if connected else 0)

    def _sync_guilds(self) -> None:
        self._status.guild_ids = {guild.id for guild in self.guilds}

    async def on_ready(self) -> None:
        self._set_connected(True)
        self._sync_guilds()
        user = self.user
        log.info(
            "connected to Discord",
            context={"bot_user_id": user.id if user else None, "guilds": len(self.guilds)},
        )

    async def on_resumed(self) -> None:
        self._set_connected(True)
        log.info("Discord session resumed")

    async def on_disconnect(self) -> None:
        if self._status.discord_connected:
            log.warning("disconnected from Discord; reconnecting")
        self._set_connected(False)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        self._sync_guilds()
        log.info("joined guild", guildId=str(guild.id))

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self._sync_guilds()
        log.info("removed from guild", guildId=str(guild.id))
