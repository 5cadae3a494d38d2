"""The fake's world: users, guilds, channels, members and voice states, with seeded ids."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DISCORD_EPOCH_MS = 1_420_070_400_000
# A fixed creation time (2026-01-01) keeps ids, and so everything derived from them, stable.
_BASE_MS = 1_767_225_600_000

CHANNEL_TEXT = 0
CHANNEL_VOICE = 2

# Permission bits (Discord's numbering).
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
CONNECT = 1 << 20
SPEAK = 1 << 21
USE_VAD = 1 << 25
USE_APPLICATION_COMMANDS = 1 << 31
EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | CONNECT
    | SPEAK
    | USE_VAD
    | USE_APPLICATION_COMMANDS
)
ALL_PERMISSIONS = (1 << 50) - 1


class SnowflakeFactory:
    """Deterministic snowflakes: a fixed timestamp plus a counter, jittered by the seed."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._counter = 0

    def next(self) -> int:
        self._counter += 1
        millis = _BASE_MS - DISCORD_EPOCH_MS + self._counter * 7  # 7: spread over shards
        return (millis << 22) | (self._random.randrange(0, 1 << 12) << 12) | self._counter % 4096


@dataclass
class User:
    id: int
    username: str
    bot: bool = False


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    type: int
    position: int


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int


@dataclass
class VoiceStateRecord:
    user_id: int
    channel_id: int
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False
    gateway_session: str = ""  # the bot's gateway session that made it (the bot's only)


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    channels: dict[int, Channel] = field(default_factory=dict)
    member_ids: list[int] = field(default_factory=list)
    voice_states: dict[int, VoiceStateRecord] = field(default_factory=dict)
    roles: dict[int, Role] = field(default_factory=dict)
    member_roles: dict[int, list[int]] = field(default_factory=dict)

    @property
    def admin_role(self) -> Role:
        return next(r for r in self.roles.values() if r.name == "admin")

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions: owner and ADMINISTRATOR get everything."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        bits = self.roles[self.id].permissions
        for role_id in self.member_roles.get(user_id, []):
            bits |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if bits & ADMINISTRATOR else bits

    def text_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == CHANNEL_TEXT]

    def voice_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == CHANNEL_VOICE]


@dataclass
class World:
    """Everything the fake knows; ids come from one seeded factory."""

    seed: int = 0
    ids: SnowflakeFactory = field(init=False)
    bot: User = field(init=False)
    application_id: int = field(init=False)
    users: dict[int, User] = field(default_factory=dict)
    guilds: dict[int, Guild] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = SnowflakeFactory(self.seed)
        self.application_id = self.ids.next()
        self.bot = User(id=self.application_id, username="openclaw-test-bot", bot=True)
        self.users[self.bot.id] = self.bot

    def add_user(self, username: str) -> User:
        user = User(id=self.ids.next(), username=username)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, text_channels: int = 1, voice_channels: int = 2) -> Guild:
        owner = self.add_user(f"{name}-owner")
        guild = Guild(id=self.ids.next(), name=name, owner_id=owner.id)
        guild.member_ids.extend([self.bot.id, owner.id])
        guild.roles[guild.id] = Role(guild.id, "@everyone", EVERYONE_PERMISSIONS, 0)
        admin = Role(self.ids.next(), "admin", ADMINISTRATOR | MANAGE_GUILD, 1)
        guild.roles[admin.id] = admin
        position = 0
        for index in range(text_channels):
            channel = Channel(self.ids.next(), guild.id, f"text-{index}", CHANNEL_TEXT, position)
            guild.channels[channel.id] = channel
            position += 1
        for index in range(voice_channels):
            channel = Channel(self.ids.next(), guild.id, f"voice-{index}", CHANNEL_VOICE, position)
            guild.channels[channel.id] = channel
            position += 1
        self.guilds[guild.id] = guild
        return guild

    def add_member(self, guild: Guild, username: str) -> User:
        user = self.add_user(username)
        guild.member_ids.append(user.id)
        return user

    def add_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        role = Role(self.ids.next(), name, permissions, len(guild.roles))
        guild.roles[role.id] = role
        return role

    def find_channel(self, channel_id: int) -> Channel | None:
        for guild in self.guilds.values():
            channel = guild.channels.get(channel_id)
            if channel is not None:
                return channel
        return None
