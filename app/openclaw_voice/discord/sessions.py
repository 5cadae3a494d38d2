"""Voice session lifecycle: join, persist, rejoin after restarts, leave when alone or idle.

One :class:`VoiceSession` per guild. The desired presence (guild → channel) lives in the
state store, so a restarted or newly promoted process rejoins exactly the channels it
should, and a wanted channel it could not keep is tried again later; a moderator's kick
or ``/voice stop`` forgets it, a shutdown keeps it. What happens
inside a session (listening, answering) belongs to the pipeline, which observes sessions
through :class:`SessionObserver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import discord
import structlog

from openclaw_voice.discord.voice_client import ListeningVoiceClient
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.status import AppStatus
from openclaw_voice.store.state import StateStore, StoreError

log = structlog.get_logger(__name__)


# Reasons for leaving that this process chose (or was told to, by a command or an admin).
REQUESTED_LEAVES = frozenset(
    {"stop", "alone", "idle", "shutdown", "guild_removed", "channel_deleted", "rejoin"}
)


# Voice close codes after which Discord does not want the connection back (rate limited,
# call terminated): the session ends, its channel stays wanted for the next process.
NO_REJOIN_CLOSE_CODES = frozenset({4021, 4022})


class VoiceConnectError(Exception):
    """Joining a voice channel failed after every attempt; the message is for users."""


@dataclass
class VoiceSession:
    guild_id: int
    channel_id: int
    voice: ListeningVoiceClient
    started_by: int | None
    text_channel_id: int | None
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        """Someone spoke or was answered: the idle timer starts again."""
        self.last_activity = time.monotonic()


class SessionObserver(Protocol):
    """The pipeline's view of sessions: attach on start, say goodbye before leaving."""

    async def session_started(self, session: VoiceSession) -> None: ...

    async def session_ending(self, session: VoiceSession, reason: str) -> None: ...


@dataclass(frozen=True)
class SessionPolicy:
    connect_timeout: float = 15.0
    connect_attempts: int = 3
    empty_channel_grace: float = 30.0
    idle_timeout: float = 300.0
    max_sessions: int = 50
    goodbye_timeout: float = 10.0
    max_rejoins: int = 3  # rejoins after lost connections per guild within rejoin_window
    rejoin_window: float = 600.0
    # A wanted channel the bot is not in (rejoins spent, 4021/4022, a rejoin that could not
    # connect) is tried again after this long, then twice as long each time, up to the max.
    retry_wanted_after: float = 60.0
    retry_wanted_max: float = 900.0


def humans_in(channel: discord.abc.GuildChannel, bot_id: int) -> int:
    """People (not bots, not us) currently in a voice channel."""
    if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
        return 0
    count = 0
    for user_id in channel.voice_states:
        if user_id == bot_id:
            continue
        member = channel.guild.get_member(user_id)
        if member is None or not member.bot:
            count += 1
    return count


class VoiceSessionManager:
    """Owns every voice session of this process."""

    def __init__(
        self,
        client: discord.Client,
        store: StateStore,
        *,
        status: AppStatus,
        metrics: Metrics | None = None,
        policy: SessionPolicy | None = None,
        observer: SessionObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._store = store
        self._status = status
        self._metrics = metrics
        self.policy = policy or SessionPolicy()
        self.observer = observer
        self._clock = clock
        self.sessions: dict[int, VoiceSession] = {}
        self._leaving: set[int] = set()
        self._empty_timers: dict[int, asyncio.TimerHandle] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._rejoining: set[int] = set()
        self._lost_while_rejoining: set[int] = set()
        self._rejoins: dict[int, deque[float]] = {}
        self._retries: dict[int, tuple[float, float]] = {}  # guild: (next try, delay)
        self._background: set[asyncio.Task[None]] = set()

    async def wait_until(self, condition: Callable[[], bool], within: float = 30.0) -> None:
        """Wait until ``condition()`` holds after some session started or ended."""
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    @property
    def rejoining(self) -> frozenset[int]:
        """Guilds whose session is being rejoined right now."""
        return frozenset(self._rejoining)

    def _notify(self) -> None:
        self._changed.set()

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    def _count(self) -> None:
        self._status.active_sessions = len(self.sessions)
        if self._metrics is not None:
            self._metrics.pipeline_active_sessions.set(len(self.sessions))

    # --- joining ------------------------------------------------------------------------

    async def start(
        self,
        channel: discord.VoiceChannel | discord.StageChannel,
        *,
        started_by: int | None,
        text_channel_id: int | None,
    ) -> VoiceSession:
        async with self._lock(channel.guild.id):
            session = await self._join(channel, started_by, text_channel_id)
        await self._started(session, channel)
        return session

    async def _join(
        self,
        channel: discord.VoiceChannel | discord.StageChannel,
        started_by: int | None,
        text_channel_id: int | None,
    ) -> VoiceSession:
        """Join ``channel`` (or move there), holding the guild's lock."""
        guild_id = channel.guild.id
        session = self.sessions.get(guild_id)
        if session is not None and session.voice.is_connected():
            if session.channel_id != channel.id:
                await session.voice.move_to(channel)
                session.channel_id = channel.id
            session.started_by, session.text_channel_id = started_by, text_channel_id
        else:
            if len(self.sessions) >= self.policy.max_sessions:
                raise VoiceConnectError("I'm in too many voice channels right now; try later.")
            session = VoiceSession(
                guild_id, channel.id, await self._connect(channel), started_by, text_channel_id
            )
            voice = session.voice
            voice.receiver.metrics = self._metrics
            voice.receiver.on_decrypt_failures = lambda: self._rejoin_soon(guild_id)
            voice.on_connection_lost = lambda code: self._voice_lost(guild_id, voice, code)
            self.sessions[guild_id] = session
            self._count()
        self._retries.pop(guild_id, None)
        await self._remember(session)
        return session

    async def _started(
        self, session: VoiceSession, channel: discord.VoiceChannel | discord.StageChannel
    ) -> None:
        guild_id = session.guild_id
        log.info(
            "voice session started",
            guildId=str(guild_id),
            context={"channel_id": str(channel.id)},
        )
        if self.observer is not None:
            await self.observer.session_started(session)
        self._check_empty(channel)
        self._notify()

    async def _connect(
        self, channel: discord.VoiceChannel | discord.StageChannel
    ) -> ListeningVoiceClient:
        last_error = "unknown error"
        for attempt in range(1, self.policy.connect_attempts + 1):
            try:
                voice = await channel.connect(
                    cls=ListeningVoiceClient,
                    timeout=self.policy.connect_timeout,
                    reconnect=True,
                    self_deaf=False,
                )
            except (TimeoutError, discord.ClientException, discord.ConnectionClosed) as error:
                last_error = (
                    f"no answer from Discord within {self.policy.connect_timeout:g} s"
                    if isinstance(error, TimeoutError)
                    else f"{type(error).__name__}: {error}"
                )
                self._connect_metric("failure")
                log.warning(
                    "voice connect attempt failed",
                    guildId=str(channel.guild.id),
                    error=last_error,
                    context={"attempt": attempt},
                )
                stale = channel.guild.voice_client
                if stale is not None:
                    with contextlib.suppress(Exception):
                        await stale.disconnect(force=True)
                if attempt < self.policy.connect_attempts:
                    await asyncio.sleep(0.5 * 2 ** (attempt - 1))  # backoff between attempts
                continue
            self._connect_metric("success")
            return voice
        raise VoiceConnectError(
            f"I couldn't join {channel.mention} after {self.policy.connect_attempts} tries "
            f"({last_error})."
        )

    def _connect_metric(self, status: str) -> None:
        if self._metrics is not None:
            self._metrics.discord_voice_connect_total.labels(status=status).inc()

    async def _remember(self, session: VoiceSession) -> None:
        # A store error is logged and counted by the store; the session itself still works.
        with contextlib.suppress(StoreError):
            await self._store.set_presence(
                session.guild_id,
                session.channel_id,
                started_by=session.started_by,
                text_channel_id=session.text_channel_id,
            )

    def _voice_lost(self, guild_id: int, voice: ListeningVoiceClient, code: int | None) -> None:
        """Discord ended a session's voice connection without removing the bot (4006, 4015,
        ...): join again with a fresh connection, a bounded number of times."""
        session = self.sessions.get(guild_id)
        if session is None or session.voice is not voice or guild_id in self._leaving:
            return
        now = self._clock()
        recent = self._rejoins.setdefault(guild_id, deque())
        while recent and now - recent[0] > self.policy.rejoin_window:
            recent.popleft()
        context = {"close_code": code, "channel_id": str(session.channel_id)}
        if code in NO_REJOIN_CLOSE_CODES or len(recent) >= self.policy.max_rejoins:
            # The channel stays wanted: rejoin_wanted() tries again later.
            log.warning(
                "voice connection lost; rejoining later", guildId=str(guild_id), context=context
            )
            self._spawn(self.stop(guild_id, reason="lost", forget=False), f"lost-{guild_id}")
            return
        recent.append(now)
        log.info("rejoining the voice channel", guildId=str(guild_id), context=context)
        self._rejoin_soon(guild_id, reason="lost")

    def _rejoin_soon(self, guild_id: int, reason: str = "rejoin") -> None:
        """Leave and join again: after sustained DAVE decrypt failures (as Discord clients
        do) or a lost voice connection."""
        if guild_id not in self.sessions:
            return
        if guild_id in self._rejoining:
            if reason == "lost":  # the connection the rejoin just made is gone already
                self._lost_while_rejoining.add(guild_id)  # (its session still starting)
            return
        self._rejoining.add(guild_id)

        async def rejoin() -> None:
            why = reason
            try:
                while (session := self.sessions.get(guild_id)) is not None:
                    guild = self._client.get_guild(guild_id)
                    channel = guild.get_channel(session.channel_id) if guild else None
                    await self.stop(guild_id, reason=why, forget=False)
                    if guild is not None:
                        await self._wait_out_of_voice(guild)
                    if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                        break
                    await self.start(
                        channel,
                        started_by=session.started_by,
                        text_channel_id=session.text_channel_id,
                    )
                    if guild_id not in self._lost_while_rejoining:
                        break
                    self._lost_while_rejoining.discard(guild_id)
                    why = "lost"
            except VoiceConnectError as error:
                # The channel stays wanted: rejoin_wanted() tries again later.
                log.error(
                    "could not rejoin the voice channel", guildId=str(guild_id), error=str(error)
                )
            finally:
                self._rejoining.discard(guild_id)
                self._lost_while_rejoining.discard(guild_id)
                self._notify()

        self._spawn(rejoin(), f"rejoin-{guild_id}")

    async def _wait_out_of_voice(self, guild: discord.Guild) -> None:
        """Until Discord confirms the bot left (a join sent before that confirmation arrives
        would be torn down by it); at most one connect timeout."""
        me = guild.me
        with contextlib.suppress(TimeoutError):
            await self.wait_until(
                lambda: me is None or me.voice is None or me.voice.channel is None,
                within=self.policy.connect_timeout,
            )

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def restore(self) -> list[int]:
        """Rejoin the channels recorded in the state store (those of guilds we serve)."""
        rejoined: list[int] = []
        try:
            wanted = await self._store.desired_presence()
        except StoreError:
            return rejoined
        for presence in wanted:
            guild = self._client.get_guild(presence.guild_id)
            if guild is None:
                continue  # another shard's guild, or we were removed from it
            channel = guild.get_channel(presence.channel_id)
            if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                await self._forget(presence.guild_id)
                continue
            try:
                await self.start(
                    channel,
                    started_by=presence.started_by,
                    text_channel_id=presence.text_channel_id,
                )
            except VoiceConnectError as error:
                log.error(
                    "could not rejoin a voice channel", guildId=str(guild.id), error=str(error)
                )
                continue
            rejoined.append(guild.id)
        return rejoined

    # --- leaving ------------------------------------------------------------------------

    async def stop(self, guild_id: int, *, reason: str, forget: bool = True) -> bool:
        """Leave a guild's voice channel; ``forget`` also drops the desired presence."""
        async with self._lock(guild_id):
            session = self.sessions.get(guild_id)
            timer = self._empty_timers.pop(guild_id, None)
            if timer is not None:
                timer.cancel()
            if session is None:
                if forget:
                    await self._forget(guild_id)
                return False
            self._leaving.add(guild_id)
            try:
                if self.observer is not None:
                    try:
                        async with asyncio.timeout(self.policy.goodbye_timeout):
                            await self.observer.session_ending(session, reason)
                    except TimeoutError:
                        log.warning("goodbye took too long", guildId=str(guild_id))
                if session.voice.is_connected():
                    await session.voice.disconnect(force=False)
                if self._metrics is not None:
                    # Alerts watch for disconnects nobody asked for; the detail is in the log.
                    label = "requested" if reason in REQUESTED_LEAVES else reason
                    self._metrics.discord_voice_disconnect_total.labels(reason=label).inc()
            finally:
                self.sessions.pop(guild_id, None)
                self._leaving.discard(guild_id)
                self._count()
            if forget:
                await self._forget(guild_id)
        log.info("voice session ended", guildId=str(guild_id), context={"reason": reason})
        self._notify()
        return True

    def adopt_voice_clients(self) -> int:
        """Hand discord.py back the voice connections it forgot; how many.

        A READY after a new IDENTIFY (the gateway session could not be resumed) clears
        discord.py's voice clients (``ConnectionState.clear``, unsharded clients), while
        the connections themselves keep working. Without them, the bot's own voice state
        updates no longer reach the connections, and leaving waits for a confirmation
        that never comes. Channels are re-pointed at the new cache's objects.
        """
        state = self._client._connection
        adopted = 0
        for guild_id, session in self.sessions.items():
            voice = session.voice
            if state._get_voice_client(guild_id) is not None or not voice.is_connected():
                continue
            channel = self._client.get_channel(voice.channel.id)
            if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                voice.channel = channel
            state._add_voice_client(guild_id, voice)
            adopted += 1
        return adopted

    async def _forget(self, guild_id: int) -> None:
        self._retries.pop(guild_id, None)  # a retry under way must not join it again
        with contextlib.suppress(StoreError):
            await self._store.clear_presence(guild_id)

    async def shutdown(self) -> None:
        """Leave every channel but keep the desired presence, for the next process."""
        # Neither the watch nor a rejoin may join again what the shutdown leaves.
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None  # a later promotion starts it again
        self._retries.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for guild_id in list(self.sessions):
            await self.stop(guild_id, reason="shutdown", forget=False)

    # --- events -------------------------------------------------------------------------

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        guild_id = member.guild.id
        me = self._client.user
        is_me = me is not None and member.id == me.id
        if is_me:
            self._notify()  # for _wait_out_of_voice
        session = self.sessions.get(guild_id)
        if session is None:
            return
        if is_me:
            if after.channel is None and guild_id not in self._leaving:
                if not session.voice.removed:
                    return  # our connection left by itself; it reports why (_voice_lost)
                # Kicked or disconnected by a moderator: honour it, don't come back.
                await self.stop(guild_id, reason="disconnected", forget=True)
            elif after.channel is not None and after.channel.id != session.channel_id:
                session.channel_id = after.channel.id  # moved by a moderator
                await self._remember(session)
                self._check_empty(after.channel)
            return
        channel = member.guild.get_channel(session.channel_id)
        if channel is not None:
            self._check_empty(channel)

    def _check_empty(self, channel: discord.abc.GuildChannel) -> None:
        """Leave after a grace period once no human is left; cancel when one comes back."""
        guild_id = channel.guild.id
        me = self._client.user
        alone = me is not None and humans_in(channel, me.id) == 0
        timer = self._empty_timers.get(guild_id)
        if not alone:
            if timer is not None:
                timer.cancel()
                del self._empty_timers[guild_id]
            return
        if timer is None:
            loop = asyncio.get_running_loop()
            self._empty_timers[guild_id] = loop.call_later(
                self.policy.empty_channel_grace,
                lambda: asyncio.ensure_future(self._leave_empty(guild_id)),
            )

    async def _leave_empty(self, guild_id: int) -> None:
        self._empty_timers.pop(guild_id, None)
        await self.stop(guild_id, reason="alone", forget=True)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.stop(guild.id, reason="guild_removed", forget=True)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        session = self.sessions.get(channel.guild.id)
        if session is not None and session.channel_id == channel.id:
            await self.stop(channel.guild.id, reason="channel_deleted", forget=True)

    # --- idle sessions, wanted channels ---------------------------------------------------

    @property
    def watching(self) -> bool:
        """Whether the session watch runs (on the active slot)."""
        return self._watch_task is not None and not self._watch_task.done()

    def start_watch(self, interval: float = 15.0) -> None:
        """Every ``interval``: leave idle sessions, try the wanted channels again."""
        if self._watch_task is None:
            self._watch_task = asyncio.create_task(self._watch(interval), name="session-watch")

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.leave_idle()
                await self.rejoin_wanted()
            except Exception as error:  # the watch must outlive one bad round
                log.error("session watch round failed", error=f"{type(error).__name__}: {error}")

    async def rejoin_wanted(self) -> list[int]:
        """Join the wanted channels (state store) this process is not in, once each is due:
        its rejoins ran out, Discord said 4021/4022, or a rejoin could not connect. A guild
        is first tried ``retry_wanted_after`` after it was seen missing, then with a doubling
        delay; a channel nobody is in is left for later. Returns the guilds joined."""
        try:
            wanted = await self._store.desired_presence()
        except StoreError:
            return []
        joined: list[int] = []
        for presence in wanted:
            guild_id = presence.guild_id
            guild = self._client.get_guild(guild_id)
            if guild is None or guild_id in self.sessions or guild_id in self._rejoining:
                continue  # another shard's guild, or held (or being rejoined) already
            now = self._clock()
            due, delay = self._retries.get(guild_id, (None, self.policy.retry_wanted_after))
            if due is None:
                self._retries[guild_id] = (now + delay, delay)
                continue
            channel = guild.get_channel(presence.channel_id)
            if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                await self._forget(guild_id)  # the channel is gone
                continue
            me = self._client.user
            if now < due or humans_in(channel, me.id if me else 0) == 0:
                continue
            later = min(2 * delay, self.policy.retry_wanted_max)
            self._retries[guild_id] = (now + later, later)
            try:
                async with self._lock(guild_id):
                    if guild_id not in self._retries:
                        continue  # forgotten (/voice stop, a kick) while waiting for the lock
                    session = await self._join(
                        channel,
                        started_by=presence.started_by,
                        text_channel_id=presence.text_channel_id,
                    )
            except VoiceConnectError as error:
                log.error(
                    "could not rejoin a wanted voice channel; trying again later",
                    guildId=str(guild_id),
                    error=str(error),
                    context={"retry_in_seconds": later},
                )
                continue
            await self._started(session, channel)
            joined.append(guild_id)
        return joined

    async def leave_idle(self) -> list[int]:
        now = self._clock()
        idle = [
            guild_id
            for guild_id, session in self.sessions.items()
            if now - session.last_activity >= self.policy.idle_timeout
        ]
        for guild_id in idle:
            await self.stop(guild_id, reason="idle", forget=True)
        return idle
