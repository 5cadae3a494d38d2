"""The process's voice pipeline: a GuildPipeline per voice session, and ``/voice ask``.

It observes the session manager (attach on join, say goodbye before leaving), owns the
shared frame clock and VAD pool, and answers the slash commands that need the agent.
"""

from __future__ import annotations

import asyncio

import discord
import structlog

from openclaw_voice.agent.base import AgentSession
from openclaw_voice.audio.clock import FRAME_SECONDS, FrameClock
from openclaw_voice.audio.vad import VadPool
from openclaw_voice.discord.permissions import may_use
from openclaw_voice.discord.playback import VoicePlayback
from openclaw_voice.discord.sessions import VoiceSession, humans_in
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.pipeline.budget import BudgetPolicy, GuildBudget
from openclaw_voice.pipeline.guild import GuildContext, GuildPipeline
from openclaw_voice.pipeline.turn import TurnRequest, TurnRunner, replay
from openclaw_voice.store.state import GuildSettings, StateStore, StoreError

log = structlog.get_logger(__name__)

GOODBYES = {
    "idle": "It's been quiet for a while, so I'm leaving. Use slash voice start to call me back.",
}


class VoicePipeline:
    """SessionObserver for the session manager, and the Assistant for the commands."""

    def __init__(
        self,
        client: discord.Client,
        store: StateStore,
        runner: TurnRunner,
        *,
        default_wake_name: str,
        metrics: Metrics | None = None,
        clock: FrameClock | None = None,
        budgets: BudgetPolicy | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self.runner = runner
        self.default_wake_name = default_wake_name
        self.budgets = budgets or BudgetPolicy()
        self._metrics = metrics
        self.clock = clock or FrameClock()
        self.vad_pool = VadPool()
        self.guilds: dict[int, GuildPipeline] = {}
        self._sessions: dict[int, VoiceSession] = {}

    # --- SessionObserver ---------------------------------------------------------------

    async def session_started(self, session: VoiceSession) -> None:
        self._sessions[session.guild_id] = session
        if session.guild_id in self.guilds:
            return  # moved or restarted the same session: keep the conversation
        try:
            settings = await self._store.guild_settings(session.guild_id)
            opted_out = await self._store.opted_out_users(session.guild_id)
        except StoreError:
            settings, opted_out = GuildSettings(session.guild_id), set()
        self.clock.start()
        pipeline = GuildPipeline(
            session.guild_id,
            runner=self.runner,
            speaker=VoicePlayback(session.voice, metrics=self._metrics),
            clock=self.clock,
            vad_pool=self.vad_pool,
            settings=settings,
            default_wake_name=self.default_wake_name,
            opted_out=opted_out,
            context=self._context(session, settings),
            metrics=self._metrics,
            budget=GuildBudget(self._store, session.guild_id, self.budgets)
            if self.budgets.limited
            else None,
        )
        self.guilds[session.guild_id] = pipeline
        session.voice.listen(pipeline)

    def _context(self, session: VoiceSession, settings: GuildSettings) -> GuildContext:
        guild_id = session.guild_id

        def humans_present() -> int:
            guild = self._client.get_guild(guild_id)
            channel = guild.get_channel(session.channel_id) if guild else None
            me = self._client.user
            return humans_in(channel, me.id) if channel is not None and me else 1

        def display_name(user_id: int) -> str:
            guild = self._client.get_guild(guild_id)
            member = guild.get_member(user_id) if guild else None
            return member.display_name if member else f"user {user_id}"

        async def post_to(channel_id: int | None, text: str) -> None:
            channel = self._client.get_channel(channel_id) if channel_id else None
            if isinstance(channel, discord.TextChannel):
                await channel.send(text, allowed_mentions=discord.AllowedMentions.none())

        async def post_transcript(text: str) -> None:
            await post_to(self.guilds[guild_id].settings.transcript_channel_id, text)

        async def post_reply(text: str) -> None:
            transcripts = self.guilds[guild_id].settings.transcript_channel_id
            await post_to(transcripts or session.text_channel_id, text)

        def may_address(user_id: int) -> bool:
            guild = self._client.get_guild(guild_id)
            member = guild.get_member(user_id) if guild else None
            settings = self.guilds[guild_id].settings
            if not settings.allowed_role_ids:
                return True
            return member is not None and may_use(member, settings)

        return GuildContext(
            humans_present, display_name, session.touch, post_transcript, post_reply, may_address
        )

    async def session_ending(self, session: VoiceSession, reason: str) -> None:
        self._sessions.pop(session.guild_id, None)
        pipeline = self.guilds.pop(session.guild_id, None)
        if pipeline is None:
            return
        try:
            goodbye = GOODBYES.get(reason)
            if goodbye is not None:
                await self._say_goodbye(pipeline, goodbye)
        finally:  # even when the goodbye ran out of time: the session's audio work ends
            await pipeline.close()
            if not self.guilds:
                await self.clock.stop()

    async def _say_goodbye(self, pipeline: GuildPipeline, text: str) -> None:
        """Speak ``text`` and wait until it has played out (the caller bounds the wait)."""
        pipeline.accepting = False
        try:
            chunks = [chunk async for chunk in self.runner.speech(text, pipeline.guild_id)]
        except Exception as error:  # saying goodbye is a courtesy, not a requirement
            log.warning("goodbye not spoken", error=str(error))
            return
        source = pipeline.speaker.say(replay(chunks))
        pipeline.speaker.finish()  # nothing follows: the source ends once this has played
        wait = getattr(source, "wait_closed", None)
        if wait is not None:
            await wait()  # every frame is encoded; the last ones are still buffered
        await asyncio.sleep(getattr(source, "queued_frames", 0) * FRAME_SECONDS)  # play out
        log.info("goodbye spoken", guildId=str(pipeline.guild_id), context={"text": text})

    # --- Assistant ----------------------------------------------------------------------

    async def ask(self, member: discord.Member, question: str, *, in_voice: bool) -> str:
        pipeline = self.guilds.get(member.guild.id)
        request = TurnRequest(
            guild_id=member.guild.id,
            user_id=member.id,
            display_name=member.display_name,
            text=question,
        )
        if pipeline is not None:
            outcome = await pipeline.run_turn(request, speak=in_voice)
        else:
            session = AgentSession(session_key=f"discord-text:{member.guild.id}")
            outcome = await self.runner.run(request, session, None)
        if outcome.error is not None and not outcome.reply:
            return outcome.error.user_message
        return outcome.reply.strip()

    def describe(self, guild_id: int) -> list[str]:
        pipeline = self.guilds.get(guild_id)
        if pipeline is None:
            return []
        lines = [f"Speakers heard: {len(pipeline.streams)}."]
        outcome = pipeline.last_outcome
        if outcome is not None and "e2e" in outcome.timings:
            lines.append(
                f"Last turn: first audio {outcome.timings['e2e'] * 1000:.0f} ms after you stopped."
            )
        return lines

    def set_opted_out(self, guild_id: int, user_id: int, opted_out: bool) -> None:
        pipeline = self.guilds.get(guild_id)
        if pipeline is not None:
            pipeline.set_opted_out(user_id, opted_out)

    async def drain(self, within: float) -> None:
        """Let every guild's reply in progress finish (together, bounded by ``within``)."""
        if self.guilds:
            await asyncio.gather(*(pipeline.drain(within) for pipeline in self.guilds.values()))

    async def close(self) -> None:
        for guild_id in list(self.guilds):
            await self.guilds.pop(guild_id).close()
        await self.clock.stop()
