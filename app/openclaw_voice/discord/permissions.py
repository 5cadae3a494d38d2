"""Who may use the bot, and whether the bot itself may join and speak in a channel."""

from __future__ import annotations

import discord

from openclaw_voice.store.state import GuildSettings

# Permission attribute → how Discord's client names it, for messages to users.
REQUIRED_VOICE_PERMISSIONS = {
    "view_channel": "View Channel",
    "connect": "Connect",
    "speak": "Speak",
}


def missing_voice_permissions(
    channel: discord.VoiceChannel | discord.StageChannel, me: discord.Member
) -> list[str]:
    """The permissions the bot lacks in ``channel``, by their names in Discord's UI."""
    granted = channel.permissions_for(me)
    missing = [
        label for name, label in REQUIRED_VOICE_PERMISSIONS.items() if not getattr(granted, name)
    ]
    if not granted.connect:
        # Without Connect discord.py reports every voice permission as denied; Speak may
        # well be granted, so name only what is certainly missing.
        missing = [label for label in missing if label != "Speak"]
    return missing


def is_admin(member: discord.Member) -> bool:
    return member.guild_permissions.manage_guild


def may_use(member: discord.Member, settings: GuildSettings) -> bool:
    """Everyone, unless the guild set an allowlist of roles (admins always may)."""
    if not settings.allowed_role_ids or is_admin(member):
        return True
    return any(role.id in settings.allowed_role_ids for role in member.roles)
