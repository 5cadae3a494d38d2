"""The ``/voice`` slash commands: start, stop, ask, status, settings, optout, optin.

Every command checks the guild's role allowlist and the rate limits first, answers within
Discord's 3 s window (deferring when joining or asking may take longer), replies
ephemerally unless the whole channel should know (the bot starting or stopping to
listen), and is counted in ``discord_command_total{command,status}``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Literal, Protocol

import discord
import structlog
from discord import app_commands

from openclaw_voice.discord.permissions import is_admin, may_use, missing_voice_permissions
from openclaw_voice.discord.ratelimit import CommandLimits
from openclaw_voice.discord.sessions import VoiceConnectError, VoiceSessionManager
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.store.state import GuildSettings, StateStore, StoreError

if TYPE_CHECKING:
    from openclaw_voice.pipeline.budget import BudgetPolicy

log = structlog.get_logger(__name__)

STORE_TROUBLE = "I can't reach my settings right now; please try again in a moment."


class Assistant(Protocol):
    """What ``/voice ask`` and ``/voice status`` need from the voice pipeline."""

    async def ask(self, member: discord.Member, question: str, *, in_voice: bool) -> str: ...

    def describe(self, guild_id: int) -> list[str]: ...

    @property
    def budgets(self) -> BudgetPolicy: ...

    def set_opted_out(self, guild_id: int, user_id: int, opted_out: bool) -> None: ...


class VoiceCommands(app_commands.Group):
    """``/voice …``: one group so the bot takes a single name in the command list."""

    def __init__(
        self,
        *,
        sessions: VoiceSessionManager,
        store: StateStore,
        limits: CommandLimits,
        metrics: Metrics | None = None,
        assistant: Assistant | None = None,
        default_wake_name: str = "OpenClaw",
    ) -> None:
        super().__init__(
            name="voice", description="Talk with OpenClaw in voice channels", guild_only=True
        )
        self.sessions = sessions
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.assistant = assistant
        self.default_wake_name = default_wake_name

    # --- shared checks ------------------------------------------------------------------

    def _count(self, command: str, status: str) -> None:
        if self.metrics is not None:
            self.metrics.discord_command_total.labels(command=command, status=status).inc()

    async def _deny(
        self, interaction: discord.Interaction, command: str, status: str, text: str
    ) -> None:
        self._count(command, status)
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    async def _gate(
        self, interaction: discord.Interaction, command: str
    ) -> tuple[discord.Member, GuildSettings] | None:
        member = interaction.user
        if interaction.guild is None or not isinstance(member, discord.Member):
            await self._deny(interaction, command, "denied", "This only works in a server.")
            return None
        try:
            settings = await self.store.guild_settings(interaction.guild.id)
        except StoreError:
            await self._deny(interaction, command, "error", STORE_TROUBLE)
            return None
        if not may_use(member, settings):
            await self._deny(
                interaction,
                command,
                "denied",
                "You don't have a role that may use the voice assistant here.",
            )
            return None
        wait = self.limits.check(member.id, interaction.guild.id)
        if wait:
            await self._deny(
                interaction,
                command,
                "rate_limited",
                f"Slow down a little: try again in {max(1, round(wait))} s.",
            )
            return None
        return member, settings

    # --- commands -----------------------------------------------------------------------

    @app_commands.command(name="start", description="Join your voice channel and listen")
    async def start(self, interaction: discord.Interaction) -> None:
        gate = await self._gate(interaction, "start")
        if gate is None:
            return
        member, settings = gate
        channel = member.voice.channel if member.voice else None
        if channel is None:
            await self._deny(interaction, "start", "denied", "Join a voice channel first.")
            return
        missing = missing_voice_permissions(channel, member.guild.me)
        if missing:
            await self._deny(
                interaction,
                "start",
                "denied",
                f"I need the {' and '.join(missing)} "
                f"permission{'s' if len(missing) > 1 else ''} in {channel.mention}.",
            )
            return
        await interaction.response.defer(thinking=True)
        try:
            await self.sessions.start(
                channel,
                started_by=member.id,
                text_channel_id=interaction.channel_id,
            )
        except VoiceConnectError as error:
            self._count("start", "error")
            await interaction.followup.send(str(error), ephemeral=True)
            return
        wake = settings.wake_name or self.default_wake_name
        self._count("start", "ok")
        await interaction.followup.send(
            f"Listening in {channel.mention}. With others around, start with \u201c{wake}\u201d. "
            f"Use `/voice optout` if you don't want to be transcribed."
        )

    @app_commands.command(name="stop", description="Leave the voice channel")
    async def stop(self, interaction: discord.Interaction) -> None:
        gate = await self._gate(interaction, "stop")
        if gate is None:
            return
        member, _ = gate
        await interaction.response.defer(thinking=True)
        left = await self.sessions.stop(member.guild.id, reason="stop", forget=True)
        self._count("stop", "ok")
        await interaction.followup.send(
            "Stopped listening." if left else "I wasn't in a voice channel."
        )

    @app_commands.command(name="ask", description="Ask OpenClaw a question")
    @app_commands.describe(question="What to ask")
    async def ask(
        self, interaction: discord.Interaction, question: app_commands.Range[str, 1, 1000]
    ) -> None:
        gate = await self._gate(interaction, "ask")
        if gate is None:
            return
        member, _ = gate
        if self.assistant is None:
            await self._deny(interaction, "ask", "error", "The assistant isn't available yet.")
            return
        session = self.sessions.sessions.get(member.guild.id)
        in_voice = (
            session is not None
            and member.voice is not None
            and member.voice.channel is not None
            and member.voice.channel.id == session.channel_id
        )
        await interaction.response.defer(thinking=True)
        try:
            answer = await self.assistant.ask(member, question, in_voice=in_voice)
        except Exception as error:  # the assistant reports coded errors; never leave it hanging
            log.error("ask failed", error=str(error), guildId=str(member.guild.id))
            self._count("ask", "error")
            await interaction.followup.send("Sorry, I couldn't get an answer this time.")
            return
        self._count("ask", "ok")
        await interaction.followup.send(answer[:2000] or "(no answer)")

    @app_commands.command(name="status", description="Show what the voice assistant is doing")
    async def status(self, interaction: discord.Interaction) -> None:
        gate = await self._gate(interaction, "status")
        if gate is None:
            return
        member, settings = gate
        session = self.sessions.sessions.get(member.guild.id)
        lines = []
        if session is None:
            lines.append("Not in a voice channel.")
        else:
            minutes = (time.monotonic() - session.started_at) / 60
            lines.append(f"Listening in <#{session.channel_id}> for {minutes:.0f} min.")
        lines.append(
            f"Mode: {settings.addressing_mode}; wake name: "
            f"{settings.wake_name or self.default_wake_name}; end of speech: "
            f"{settings.end_of_speech_ms} ms."
        )
        if self.assistant is not None:
            lines.extend(self.assistant.describe(member.guild.id))
            lines.append(await self._budget_left(member.guild.id, self.assistant.budgets))
        self._count("status", "ok")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    async def _budget_left(self, guild_id: int, budgets: BudgetPolicy) -> str:
        """What is left of today's daily budgets (UTC day), for ``/voice status``."""
        if not budgets.limited:
            return "Budget: no daily limit."
        try:
            used = await self.store.usage(guild_id)
        except StoreError:
            return "Budget left today: unknown right now."
        limits: tuple[tuple[str, float, float, str], ...] = (
            # usage kind, daily limit (0: none), stored units per shown unit, shown unit
            ("stt_seconds", budgets.stt_seconds, 60, "{:.1f} min of listening"),
            ("tts_characters", budgets.tts_characters, 1, "{:.0f} characters of speech"),
            ("llm_tokens", budgets.llm_tokens, 1, "{:.0f} agent tokens"),
        )
        parts = []
        for kind, limit, per_unit, shown in limits:
            if limit:
                left = max(0.0, limit - used.get(kind, 0.0))
                parts.append(shown.format(left / per_unit) + (" (used up)" if not left else ""))
        return f"Budget left today: {', '.join(parts)}."

    @app_commands.command(name="settings", description="Change how the assistant listens (admins)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(
        mode="auto: wake name needed only with several people; wake: always; open: never",
        wake_name="What people call the bot",
        end_of_speech_ms="Silence that ends an utterance, in milliseconds",
        transcript_channel="Post transcripts of each turn here",
        allow_role="Only members with an allowed role may use the bot (adds this role)",
        clear="Reset: all roles allowed and no transcript channel",
    )
    async def settings(  # noqa: PLR0917 - discord.py passes options as parameters
        self,
        interaction: discord.Interaction,
        mode: Literal["auto", "wake", "open"] | None = None,
        wake_name: app_commands.Range[str, 2, 32] | None = None,
        end_of_speech_ms: app_commands.Range[int, 200, 3000] | None = None,
        transcript_channel: discord.TextChannel | None = None,
        allow_role: discord.Role | None = None,
        clear: bool = False,
    ) -> None:
        gate = await self._gate(interaction, "settings")
        if gate is None:
            return
        member, current = gate
        if not is_admin(member):
            await self._deny(
                interaction, "settings", "denied", "Only members who can manage the server may."
            )
            return
        updated = dataclasses.replace(
            current,
            addressing_mode=mode or current.addressing_mode,
            wake_name=wake_name.strip() if wake_name else current.wake_name,
            end_of_speech_ms=end_of_speech_ms or current.end_of_speech_ms,
            transcript_channel_id=None
            if clear
            else (transcript_channel.id if transcript_channel else current.transcript_channel_id),
            allowed_role_ids=()
            if clear
            else tuple(
                dict.fromkeys((*current.allowed_role_ids, *([allow_role.id] if allow_role else [])))
            ),
        )
        try:
            await self.store.save_guild_settings(updated)
        except StoreError:
            await self._deny(interaction, "settings", "error", STORE_TROUBLE)
            return
        self._count("settings", "ok")
        roles = ", ".join(f"<@&{role}>" for role in updated.allowed_role_ids) or "everyone"
        transcripts = (
            f"<#{updated.transcript_channel_id}>" if updated.transcript_channel_id else "off"
        )
        await interaction.response.send_message(
            f"Mode {updated.addressing_mode}, wake name "
            f"{updated.wake_name or self.default_wake_name}, end of speech "
            f"{updated.end_of_speech_ms} ms, transcripts {transcripts}, allowed: {roles}.",
            ephemeral=True,
        )

    @app_commands.command(name="optout", description="Never transcribe my voice in this server")
    async def optout(self, interaction: discord.Interaction) -> None:
        await self._set_optout(interaction, "optout", True)

    @app_commands.command(name="optin", description="Allow transcribing my voice again")
    async def optin(self, interaction: discord.Interaction) -> None:
        await self._set_optout(interaction, "optin", False)

    async def _set_optout(
        self, interaction: discord.Interaction, command: str, opted_out: bool
    ) -> None:
        # No allowlist or rate limit here: anyone may always protect their own voice.
        member = interaction.user
        if interaction.guild is None or not isinstance(member, discord.Member):
            await self._deny(interaction, command, "denied", "This only works in a server.")
            return
        try:
            await self.store.set_opted_out(interaction.guild.id, member.id, opted_out)
        except StoreError:
            await self._deny(interaction, command, "error", STORE_TROUBLE)
            return
        if self.assistant is not None:
            self.assistant.set_opted_out(interaction.guild.id, member.id, opted_out)
        self._count(command, "ok")
        await interaction.response.send_message(
            "Done: your voice will not be transcribed here."
            if opted_out
            else "Done: I'll listen to you again.",
            ephemeral=True,
        )
