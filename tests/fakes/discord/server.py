"""FakeDiscord: one TLS listener on 127.0.0.1 serving REST, the gateway and the voice gateway,
plus one UDP socket per voice connection."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from openclaw_voice.discord.endpoints import DiscordEndpoints
from tests.fakes.discord import payloads
from tests.fakes.discord.controls import Controls
from tests.fakes.discord.gateway import Gateway, GatewaySession
from tests.fakes.discord.payloads import JSON
from tests.fakes.discord.recorder import Recorder
from tests.fakes.discord.rest import InteractionRecord, RestApi
from tests.fakes.discord.simulated import Pacer, SimulatedUser
from tests.fakes.discord.tls import generate_certificate
from tests.fakes.discord.voice_gateway import VoiceGateway
from tests.fakes.discord.world import Channel, Guild, Role, User, VoiceStateRecord, World

log = structlog.get_logger()

BOT_TOKEN = "fake-bot-token.openclaw.test"


class FakeDiscord:
    """A protocol-level Discord for the real discord.py client.

    ``start()`` binds ephemeral ports on 127.0.0.1; :attr:`endpoints` is what the client
    must be pointed at (``apply_endpoints`` + ``make_connector``). The world (guilds,
    channels, users) is built before or after start; ids derive from ``seed``.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        dave_protocol_version: int = 1,
        host: str = "127.0.0.1",
        guilds: int = 1,
        voice_heartbeat_ms: int = 13_750,
    ) -> None:
        self.host = host
        self.port = 0
        self.token = BOT_TOKEN
        self.seed = seed
        self.recommended_shards = 1
        # Seconds between the bot's VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE (see
        # on_bot_voice_state); raise it when the client runs in a busy separate process.
        self.voice_update_gap = 0.005
        self.world = World(seed=seed)
        self.controls = Controls(seed)
        self.recorder = Recorder()
        self.rest = RestApi(self)
        self.gateway = Gateway(self)
        self.voice = VoiceGateway(
            self,
            dave_protocol_version=dave_protocol_version,
            heartbeat_interval_ms=voice_heartbeat_ms,
        )
        self.simulated: dict[int, SimulatedUser] = {}
        self.pacer = Pacer()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._cert_path: Path | None = None
        for index in range(guilds):
            self.world.add_guild(f"guild-{index}")

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-discord-")
        certificate = generate_certificate(Path(self._tmp.name), self.host)
        self._cert_path = certificate.cert_path
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.rest.install(app)
        self.gateway.install(app)
        self.voice.install(app)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=certificate.server_context())
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        log.info("fake_discord.started", port=self.port)

    async def stop(self) -> None:
        await self.pacer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.voice.close()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        log.info("fake_discord.stopped")

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep a background task alive until it ends or the fake stops."""
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.track(task)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("fake_discord.task_failed", error=repr(error))
            self.recorder.record("fake_error", error=repr(error))

    @property
    def endpoints(self) -> DiscordEndpoints:
        if self._cert_path is None:
            raise RuntimeError("FakeDiscord.start() first")
        return DiscordEndpoints(
            api_base=f"https://{self.host}:{self.port}/api/v10",
            gateway_url=self.gateway.url,
            ca_bundle=self._cert_path,
        )

    # --- world shortcuts ---------------------------------------------------------------

    @property
    def guild(self) -> Guild:
        """The first guild."""
        return next(iter(self.world.guilds.values()))

    def voice_channel(self, guild: Guild | None = None, index: int = 0) -> Channel:
        return (guild or self.guild).voice_channels()[index]

    def text_channel(self, guild: Guild | None = None, index: int = 0) -> Channel:
        return (guild or self.guild).text_channels()[index]

    # --- interactions ------------------------------------------------------------------

    async def invoke_slash_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: User | None = None,
        guild: Guild | None = None,
        channel: Channel | None = None,
    ) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE for a registered slash command.

        ``name`` may address a subcommand (``"voice start"``) or a subcommand in a group
        (``"admin settings show"``); ``options`` maps option names to values, typed from
        the registered command. The user defaults to the guild's owner.
        """
        guild = guild or self.guild
        channel = channel or guild.text_channels()[0]
        user = user or self.world.users[guild.owner_id]
        top, *path = name.split()
        command = self.rest.find_command(top, guild.id)
        if command is None:
            raise KeyError(f"command {top!r} is not registered")
        option_payloads = _command_options(command, path, options or {})
        record = InteractionRecord(
            id=self.world.ids.next(),
            token=secrets.token_urlsafe(32),
            guild_id=guild.id,
            channel_id=channel.id,
            user_id=user.id,
            command_name=name,
            options=option_payloads,
        )
        self.rest.interactions[record.token] = record
        command_guild = command.get("guild_id")
        payload = payloads.interaction_payload(
            self.world,
            interaction_id=record.id,
            token=record.token,
            guild=guild,
            channel=channel,
            user=user,
            command_id=int(command["id"]),
            command_name=top,
            options=option_payloads,
            command_guild_id=int(command_guild) if command_guild else None,
        )
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id)
        return record

    async def create_role(self, name: str, guild: Guild | None = None) -> Role:
        """A new role without permissions, announced with GUILD_ROLE_CREATE."""
        guild = guild or self.guild
        role = self.world.add_role(guild, name)
        await self.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild.id), "role": payloads.role_payload(role)},
            guild_id=guild.id,
        )
        return role

    async def grant_role(self, user: User, role: Role, guild: Guild | None = None) -> None:
        """Give ``user`` a role (e.g. ``guild.admin_role``); dispatches GUILD_MEMBER_UPDATE."""
        guild = guild or self.guild
        roles = guild.member_roles.setdefault(user.id, [])
        if role.id not in roles:
            roles.append(role.id)
        member = payloads.member_payload(guild, user)
        member["guild_id"] = str(guild.id)
        await self.gateway.dispatch("GUILD_MEMBER_UPDATE", member, guild_id=guild.id)

    # --- simulated users -------------------------------------------------------------

    async def add_simulated_user(
        self, name: str, *, guild: Guild | None = None, channel: Channel | None = None
    ) -> SimulatedUser:
        """A new guild member; joins ``channel`` (a voice channel) when given."""
        guild = guild or self.guild
        user = self.world.add_member(guild, name)
        sim = SimulatedUser(self, user, guild)
        self.simulated[user.id] = sim
        if self.gateway.sessions:
            member = payloads.member_payload(guild, user)
            member["guild_id"] = str(guild.id)
            await self.gateway.dispatch("GUILD_MEMBER_ADD", member, guild_id=guild.id)
        if channel is not None:
            await self.set_user_voice_channel(user, guild, channel)
        return sim

    async def move_simulated_user(self, sim: SimulatedUser, channel: Channel | None) -> None:
        """Join, move to, or (``None``) leave a voice channel."""
        await self.set_user_voice_channel(sim.user, sim.guild, channel)

    # --- voice states ------------------------------------------------------------------

    async def set_user_voice_channel(
        self, user: User, guild: Guild, channel: Channel | None
    ) -> None:
        """A (simulated) human joins, moves or leaves (``None``) a voice channel."""
        previous = guild.voice_states.get(user.id)
        if channel is None:
            if previous is None:
                return
            del guild.voice_states[user.id]
            payload = payloads.voice_state_left_payload(guild, user, previous.session_id)
        else:
            state = VoiceStateRecord(
                user.id, channel.id, previous.session_id if previous else secrets.token_hex(16)
            )
            guild.voice_states[user.id] = state
            payload = payloads.voice_state_payload(guild, user, state)
        await self.gateway.dispatch("VOICE_STATE_UPDATE", payload, guild_id=guild.id)
        await self.voice.on_member_channel_change(
            guild, user, previous.channel_id if previous else None, channel.id if channel else None
        )

    async def kick_bot_from_voice(self, guild: Guild | None = None, *, code: int = 4014) -> None:
        """Disconnect the bot from voice as a moderator would: the voice websocket closes
        with ``code`` (4014), then VOICE_STATE_UPDATE without a channel."""
        guild = guild or self.guild
        bot = self.world.bot
        await self.voice.close_voice(guild.id, code)
        await self.voice.on_bot_left(guild.id)
        previous = guild.voice_states.pop(bot.id, None)
        if previous is not None:
            await self.gateway.dispatch(
                "VOICE_STATE_UPDATE",
                payloads.voice_state_left_payload(guild, bot, previous.session_id),
                guild_id=guild.id,
            )

    async def move_bot(self, channel: Channel, *, close_code: int | None = None) -> None:
        """A moderator drags the bot into ``channel`` (a voice channel of the same guild):
        VOICE_STATE_UPDATE with the new channel (same voice session id), then
        VOICE_SERVER_UPDATE with a new token, as Discord sends them. The client closes its
        voice websocket and identifies again with the new token; the fake's connection then
        belongs to the new channel's call (see ``VoiceGateway._identify``).

        With ``close_code`` (4014: "voice server changed") the old voice websocket is closed
        by the server first, the race between the two connections that discord.py handles
        by waiting for the VOICE_SERVER_UPDATE."""
        guild = self.world.guilds[channel.guild_id]
        bot = self.world.bot
        previous = guild.voice_states.get(bot.id)
        if previous is None:
            raise ValueError("the bot is in no voice channel of this guild")
        if previous.channel_id == channel.id:
            return
        if close_code is not None:
            await self.voice.close_voice(guild.id, close_code)
        state = dataclasses.replace(previous, channel_id=channel.id)
        guild.voice_states[bot.id] = state
        await self.gateway.dispatch(
            "VOICE_STATE_UPDATE", payloads.voice_state_payload(guild, bot, state), guild_id=guild.id
        )
        await _yield_to_loop(self.voice_update_gap)
        token = self.voice.issue_token(guild.id, channel.id, state.session_id)
        await self.gateway.dispatch(
            "VOICE_SERVER_UPDATE",
            {"token": token, "guild_id": str(guild.id), "endpoint": self.voice.endpoint},
            guild_id=guild.id,
        )
        self.recorder.record("bot_moved", guild_id=guild.id, channel_id=channel.id)

    async def delete_channel(self, channel: Channel) -> None:
        """Delete a channel: CHANNEL_DELETE; for a voice channel everyone in it is then
        disconnected as Discord does it: the bot's voice websocket closes with 4014 followed
        by VOICE_STATE_UPDATE without a channel, and each human gets one too."""
        guild = self.world.guilds[channel.guild_id]
        guild.channels.pop(channel.id, None)
        await self.gateway.dispatch(
            "CHANNEL_DELETE", payloads.channel_payload(channel), guild_id=guild.id
        )
        inside = [s.user_id for s in guild.voice_states.values() if s.channel_id == channel.id]
        for user_id in inside:
            if user_id == self.world.bot.id:
                await self.kick_bot_from_voice(guild, code=4014)
            else:
                await self.set_user_voice_channel(self.world.users[user_id], guild, None)
        self.voice.calls.pop(channel.id, None)
        self.recorder.record("channel_deleted", guild_id=guild.id, channel_id=channel.id)

    async def remove_bot_from_guild(self, guild: Guild | None = None) -> None:
        """The bot is kicked from ``guild`` (or the guild is deleted): GUILD_DELETE without
        ``unavailable``. The bot's voice state goes with its membership and the voice server
        drops it from the call, but nothing tells the bot about voice: no VOICE_STATE_UPDATE
        (it no longer receives the guild's events) and its voice websocket stays open until
        the bot closes it. From then on the guild is absent from READY/GUILD_CREATE and the
        bot's op 4 for it is ignored."""
        guild = guild or self.guild
        bot = self.world.bot
        if bot.id in guild.member_ids:
            guild.member_ids.remove(bot.id)
        guild.voice_states.pop(bot.id, None)
        guild.member_roles.pop(bot.id, None)
        await self.gateway.dispatch(
            "GUILD_DELETE", payloads.guild_delete_payload(guild), guild_id=guild.id
        )
        await self.voice.on_bot_left(guild.id)
        self.recorder.record("bot_removed_from_guild", guild_id=guild.id)

    async def on_bot_voice_state(self, session: GatewaySession, data: JSON) -> None:
        """The bot's op 4: VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE, each after a yield.

        discord.py's ``VoiceConnectionState`` sets its flow state right after sending op 4
        and misses updates that land in the same loop tick, so both dispatches wait for
        the loop to run the client first.
        """
        guild = self.world.guilds.get(int(data["guild_id"]))
        bot = self.world.bot
        if guild is None or bot.id not in guild.member_ids:
            return  # not (or no longer) a member: Discord ignores it
        channel_id = data.get("channel_id")
        previous = guild.voice_states.get(bot.id)
        await _yield_to_loop(self.voice_update_gap)
        if channel_id is None:
            if previous is None:
                return
            del guild.voice_states[bot.id]
            await self.gateway.dispatch(
                "VOICE_STATE_UPDATE",
                payloads.voice_state_left_payload(guild, bot, previous.session_id),
                guild_id=guild.id,
            )
            await self.voice.on_bot_left(guild.id)
            return
        if (
            previous is not None
            and previous.channel_id == int(channel_id)
            and previous.gateway_session == session.session_id
        ):
            # Same channel again from the same session (discord.py's 4015 path): Discord
            # only echoes the state. From another session (a restarted process whose old
            # state was never cleared) it is a new voice session, answered in full.
            await self.gateway.dispatch(
                "VOICE_STATE_UPDATE",
                payloads.voice_state_payload(guild, bot, previous),
                guild_id=guild.id,
            )
            return
        state = VoiceStateRecord(
            bot.id,
            int(channel_id),
            secrets.token_hex(16),
            self_mute=bool(data.get("self_mute")),
            self_deaf=bool(data.get("self_deaf")),
            gateway_session=session.session_id,
        )
        guild.voice_states[bot.id] = state
        await self.gateway.dispatch(
            "VOICE_STATE_UPDATE", payloads.voice_state_payload(guild, bot, state), guild_id=guild.id
        )
        faults = self.controls.voice
        if faults.withhold_server_update > 0:
            faults.withhold_server_update -= 1
            self.recorder.record(
                "voice_server_update_withheld", guild_id=guild.id, channel_id=int(channel_id)
            )
            return
        await _yield_to_loop(self.voice_update_gap)
        token = self.voice.issue_token(guild.id, int(channel_id), state.session_id)
        await self.gateway.dispatch(
            "VOICE_SERVER_UPDATE",
            {"token": token, "guild_id": str(guild.id), "endpoint": self.voice.endpoint},
            guild_id=guild.id,
        )


async def _yield_to_loop(gap: float) -> None:
    """Let the client's reader, state machine and its re-armed waiter all run (about six
    loop iterations when client and fake share a loop), then add a little network latency
    for when they do not."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(gap)


SUBCOMMAND = 1
SUBCOMMAND_GROUP = 2


def _command_options(command: JSON, path: list[str], values: dict[str, Any]) -> list[JSON]:
    """Interaction options for ``values`` under the subcommand ``path`` of ``command``."""
    declared: list[JSON] = command.get("options") or []
    if not path:
        types = {opt["name"]: int(opt["type"]) for opt in declared}
        unknown = set(values) - set(types)
        if unknown:
            raise KeyError(f"unknown options {sorted(unknown)} for {command['name']!r}")
        return [{"name": key, "type": types[key], "value": value} for key, value in values.items()]
    head, *rest = path
    for option in declared:
        if option["name"] == head and int(option["type"]) in (SUBCOMMAND, SUBCOMMAND_GROUP):
            return [
                {
                    "name": head,
                    "type": int(option["type"]),
                    "options": _command_options(option, rest, values),
                }
            ]
    raise KeyError(f"{command['name']!r} has no subcommand {head!r}")
