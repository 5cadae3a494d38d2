"""Complete JSON payloads for the objects the fake hands to discord.py.

discord.py indexes many keys directly (``data['attachment_size_limit']``, ``data['flags']``,
``data['bitrate']`` ...), and a missing key raises ``KeyError`` inside the client's parser.
Every builder here therefore emits every key of the documented object, with neutral values.
"""

from __future__ import annotations

import datetime
from typing import Any

from tests.fakes.discord.world import (
    CHANNEL_VOICE,
    DISCORD_EPOCH_MS,
    Channel,
    Guild,
    Role,
    User,
    VoiceStateRecord,
    World,
)

JSON = dict[str, Any]
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


def iso_timestamp(snowflake: int) -> str:
    """The creation time of ``snowflake`` in ISO 8601, as Discord writes timestamps."""
    millis = (snowflake >> 22) + DISCORD_EPOCH_MS
    moment = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC)
    return moment.isoformat()


def user_payload(user: User) -> JSON:
    return {
        "id": str(user.id),
        "username": user.username,
        "discriminator": "0",
        "global_name": None if user.bot else user.username.title(),
        "avatar": None,
        "bot": user.bot,
        "system": False,
        "mfa_enabled": False,
        "banner": None,
        "accent_color": None,
        "locale": "en-US",
        "verified": True,
        "email": None,
        "flags": 0,
        "premium_type": 0,
        "public_flags": 0,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
    }


def member_payload(guild: Guild, user: User, *, with_permissions: bool = False) -> JSON:
    payload: JSON = {
        "user": user_payload(user),
        "nick": None,
        "avatar": None,
        "banner": None,
        "roles": [str(role_id) for role_id in guild.member_roles.get(user.id, [])],
        "joined_at": iso_timestamp(guild.id),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
        "avatar_decoration_data": None,
    }
    if with_permissions:
        payload["permissions"] = str(guild.permissions_of(user.id))
    return payload


def role_payload(role: Role) -> JSON:
    """A role; @everyone's id is the guild id."""
    return {
        "id": str(role.id),
        "name": role.name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def channel_payload(channel: Channel) -> JSON:
    payload: JSON = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }
    if channel.type == CHANNEL_VOICE:
        payload.update(
            {
                "bitrate": 64000,
                "user_limit": 0,
                "rtc_region": None,
                "video_quality_mode": 1,
                "status": None,
            }
        )
    else:
        payload.update({"topic": None, "default_auto_archive_duration": 1440})
    return payload


def voice_state_payload(
    guild: Guild, user: User | None, state: VoiceStateRecord, *, with_member: bool = True
) -> JSON:
    payload: JSON = {
        "guild_id": str(guild.id),
        "channel_id": str(state.channel_id),
        "user_id": str(state.user_id),
        "session_id": state.session_id,
        "deaf": False,
        "mute": False,
        "self_deaf": state.self_deaf,
        "self_mute": state.self_mute,
        "self_stream": False,
        "self_video": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    if with_member and user is not None:
        payload["member"] = member_payload(guild, user)
    return payload


def voice_state_left_payload(guild: Guild, user: User, session_id: str) -> JSON:
    payload = voice_state_payload(guild, user, VoiceStateRecord(user.id, 0, session_id))
    payload["channel_id"] = None
    return payload


def guild_payload(guild: Guild) -> JSON:
    """The REST guild object (no gateway-only keys)."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "icon_hash": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role_payload(role) for role in guild.roles.values()],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_presences": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "approximate_member_count": len(guild.member_ids),
        "approximate_presence_count": 0,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "safety_alerts_channel_id": None,
        "incidents_data": None,
    }


def guild_delete_payload(guild: Guild, *, unavailable: bool = False) -> JSON:
    """GUILD_DELETE: an unavailable guild object. Without ``unavailable`` the bot was
    removed from the guild (kicked, banned, or the guild was deleted); with it, an outage."""
    payload: JSON = {"id": str(guild.id)}
    if unavailable:
        payload["unavailable"] = True
    return payload


def guild_create_payload(world: World, guild: Guild) -> JSON:
    """GUILD_CREATE: the guild plus channels, members and current voice states."""
    payload = guild_payload(guild)
    payload.update(
        {
            "joined_at": iso_timestamp(guild.id),
            "large": False,
            "unavailable": False,
            "member_count": len(guild.member_ids),
            "voice_states": [
                voice_state_payload(guild, None, state, with_member=False)
                for state in guild.voice_states.values()
            ],
            "members": [member_payload(guild, world.users[uid]) for uid in guild.member_ids],
            "channels": [channel_payload(c) for c in guild.channels.values()],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
    )
    return payload


def application_payload(world: World) -> JSON:
    return {
        "id": str(world.application_id),
        "name": world.bot.username,
        "icon": None,
        "description": "",
        "rpc_origins": [],
        "bot_public": True,
        "bot_require_code_grant": False,
        "bot": user_payload(world.bot),
        "terms_of_service_url": None,
        "privacy_policy_url": None,
        "owner": user_payload(world.bot),
        "summary": "",
        "verify_key": "0" * 64,
        "team": None,
        "guild_id": None,
        "primary_sku_id": None,
        "slug": None,
        "cover_image": None,
        "flags": 0,
        "approximate_guild_count": len(world.guilds),
        "approximate_user_install_count": 0,
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "event_webhooks_url": None,
        "event_webhooks_status": 1,
        "event_webhooks_types": [],
        "tags": [],
        "install_params": None,
        "integration_types_config": {},
        "custom_install_url": None,
    }


def application_command_payload(
    world: World, command_id: int, body: JSON, guild_id: int | None
) -> JSON:
    """A registered command: what the client sent, plus the server-assigned keys."""
    payload: JSON = {
        "id": str(command_id),
        "application_id": str(world.application_id),
        "version": str(command_id),
        "type": body.get("type", 1),
        "name": body["name"],
        "name_localizations": body.get("name_localizations"),
        "description": body.get("description", ""),
        "description_localizations": body.get("description_localizations"),
        "options": body.get("options", []),
        "default_member_permissions": body.get("default_member_permissions"),
        "dm_permission": body.get("dm_permission", True),
        "nsfw": body.get("nsfw", False),
        "contexts": body.get("contexts"),
        "integration_types": body.get("integration_types", [0]),
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    return payload


def message_payload(
    message_id: int,
    channel: Channel | None,
    channel_id: int,
    author: User,
    body: JSON,
    *,
    webhook_id: int | None = None,
    interaction_id: int | None = None,
) -> JSON:
    payload: JSON = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": user_payload(author),
        "content": body.get("content") or "",
        "timestamp": iso_timestamp(message_id),
        "edited_timestamp": None,
        "tts": bool(body.get("tts", False)),
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "mention_channels": [],
        "attachments": [],
        "embeds": body.get("embeds") or [],
        "reactions": [],
        "nonce": body.get("nonce"),
        "pinned": False,
        "type": 20 if interaction_id is not None else 0,
        "flags": int(body.get("flags") or 0),
        "components": body.get("components") or [],
        "sticker_items": [],
        "position": None,
    }
    if channel is not None:
        payload["guild_id"] = str(channel.guild_id)
    if webhook_id is not None:
        payload["webhook_id"] = str(webhook_id)
        payload["application_id"] = str(webhook_id)
    return payload


def interaction_payload(
    world: World,
    *,
    interaction_id: int,
    token: str,
    guild: Guild,
    channel: Channel,
    user: User,
    command_id: int,
    command_name: str,
    options: list[JSON],
    command_guild_id: int | None,
) -> JSON:
    """INTERACTION_CREATE for a chat-input (slash) command."""
    data: JSON = {
        "id": str(command_id),
        "name": command_name,
        "type": 1,
        "options": options,
        "resolved": {},
    }
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return {
        "id": str(interaction_id),
        "application_id": str(world.application_id),
        "type": 2,
        "data": data,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
        "channel_id": str(channel.id),
        "channel": channel_payload(channel),
        "member": member_payload(guild, user, with_permissions=True),
        "token": token,
        "version": 1,
        "app_permissions": str(guild.permissions_of(world.bot.id)),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
