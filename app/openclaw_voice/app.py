"""The application object: wires settings, observability, the ops server and the bot.

Construction happens here and only here; modules receive their collaborators.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import cast

import aiohttp
import discord
import structlog

from openclaw_voice import __version__
from openclaw_voice.agent.registry import build_agent_chain
from openclaw_voice.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from openclaw_voice.config import Settings
from openclaw_voice.discord.client import ShardedVoiceBot, VoiceBot
from openclaw_voice.discord.commands import VoiceCommands
from openclaw_voice.discord.endpoints import apply_endpoints, make_connector
from openclaw_voice.discord.ratelimit import CommandLimits
from openclaw_voice.discord.sessions import SessionPolicy, VoiceSessionManager
from openclaw_voice.ops.admin import role_handler
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.provider_metrics import (
    agent_usage_recorder,
    provider_observer,
    tts_stats_recorder,
)
from openclaw_voice.ops.server import OpsServer
from openclaw_voice.ops.slot import ActiveLock, RoleConflict, SlotController
from openclaw_voice.ops.status import AppStatus, LoopMonitor
from openclaw_voice.ops.systemd import SystemdNotifier
from openclaw_voice.pipeline.budget import BudgetPolicy
from openclaw_voice.pipeline.manager import VoicePipeline
from openclaw_voice.pipeline.turn import Preloadable, TurnRunner
from openclaw_voice.store.state import StateStore, StoreError
from openclaw_voice.stt.registry import build_stt_chain
from openclaw_voice.tts.cache import CachedTextToSpeech
from openclaw_voice.tts.registry import ChainTextToSpeech, build_tts_chain

log = structlog.get_logger(__name__)

SERVICE_NAME = "openclaw-voice"
# How long an interaction waits for this slot to become active during a role flip.
FLIP_GRACE_SECONDS = 2.0


class Application:
    """One running bot process: ops HTTP server plus the Discord client."""

    def __init__(
        self,
        settings: Settings,
        *,
        build_runner: Callable[[Settings, Metrics | None], TurnRunner] | None = None,
    ) -> None:
        """``build_runner`` makes the turn runner (default: the configured providers'
        chains, :func:`build_turn_runner`); the load harness passes its own."""
        self.settings = settings
        self.build_runner = build_runner if build_runner is not None else build_turn_runner
        self.status = AppStatus(
            version=__version__,
            environment=settings.app_env,
            loop_monitor=LoopMonitor(settings.health_check_interval),
        )
        self.metrics = Metrics() if settings.prometheus_enabled else None
        self.slot = SlotController(
            self.status,
            ActiveLock(settings.state_dir, settings.slot_name),
            on_promote=self._promote,
            on_demote=self._demote,
        )
        token = settings.ops_admin_token
        self.ops = OpsServer(
            self.status,
            self.metrics,
            host=settings.ops_host,
            port=settings.ops_port,
            max_loop_lag=max(1.0, 2 * settings.health_check_interval),
            admin=role_handler(self.slot, token) if token is not None else None,
        )
        self.stop_requested = asyncio.Event()
        # READY=1 once the ops server serves; traffic readiness is /ready (the slot role).
        self.systemd = SystemdNotifier()
        self.bot: VoiceBot | None = None
        # A promotion through the admin endpoint waits this long for Discord's READY (the
        # playbook wants a prompt answer); the start-up promotion waits as long as it takes.
        self.promote_connect_timeout = 60.0
        self.store: StateStore | None = None
        self.pipeline: VoicePipeline | None = None

    # --- slot role ----------------------------------------------------------------------

    async def _promote(self) -> None:
        """Start acting: register commands, rejoin the recorded voice channels."""
        bot = self.bot
        if bot is None or bot.sessions is None:
            raise RuntimeError("promotion before the Discord client exists")
        async with asyncio.timeout(self.promote_connect_timeout):
            await bot.connected_once.wait()
        try:
            await bot.sync_commands()
        except (discord.HTTPException, aiohttp.ClientError) as error:
            # Discord keeps the commands registered before; acting matters more.
            log.error(
                "could not register the slash commands; the ones registered before stay",
                error=f"{type(error).__name__}: {error}",
            )
        rejoined = await bot.sessions.restore()
        # Check often enough that a short idle timeout or retry is honoured about on time.
        sessions = self.settings.sessions
        shortest = min(sessions.idle_timeout_seconds, sessions.voice_rejoin_retry_seconds)
        bot.sessions.start_watch(interval=min(15.0, max(0.1, shortest / 4)))
        if self.metrics is not None:
            self.metrics.openclaw_voice_slot_active.set(1)
        log.info("acting on Discord events", context={"rejoined_guilds": len(rejoined)})

    async def _demote(self) -> None:
        """Stop acting: finish replies (bounded), leave voice but keep the desired presence."""
        if self.metrics is not None:
            self.metrics.openclaw_voice_slot_active.set(0)
        if self.pipeline is not None:
            await self.pipeline.drain(self.settings.sessions.drain_seconds)
        if self.bot is not None and self.bot.sessions is not None:
            await self.bot.sessions.shutdown()

    async def _gate(self, interaction: discord.Interaction) -> bool:
        """Answer only while active, and only the first time (both slots see everything)."""
        if not await self.slot.wait_acting(FLIP_GRACE_SECONDS):
            return False
        if self.store is None:
            return True
        try:
            return await self.store.claim_interaction(interaction.id, self.settings.slot_name)
        except StoreError:
            return True  # better a rare double answer than none

    async def _take_initial_role(self) -> None:
        """SLOT_ROLE=active: act once Discord has let the bot in, however long that takes
        (a host started during a Discord incident must not stay standby for good)."""
        if self.settings.slot_role != "active":
            log.info("starting as standby", context={"slot": self.settings.slot_name})
            return
        if self.bot is not None:
            await self.bot.connected_once.wait()
        try:
            await self.slot.set_role("active")
        except RoleConflict as conflict:
            log.error("staying standby: another slot is active", error=str(conflict))

    def request_stop(self) -> None:
        if not self.stop_requested.is_set():
            log.info("stop requested; shutting down")
        self.stop_requested.set()

    async def run(self) -> int:
        """Run until a stop is requested or the Discord client ends; return the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            await self.ops.start()
        except OSError as error:
            log.error(
                "cannot start the ops HTTP server",
                error=f"{self.settings.ops_host}:{self.settings.ops_port}: {error.strerror}",
            )
            return EXIT_FAILURE
        self.systemd.ready(f"ops on {self.settings.ops_host}:{self.ops.port}")
        self.systemd.start_watchdog()
        log.info(
            "started",
            context={
                "version": __version__,
                "environment": self.settings.app_env,
                "ops": f"{self.settings.ops_host}:{self.ops.port}",
                "discord_api": self.settings.discord_endpoints.api_base,
            },
        )
        try:
            return await self._run_bot()
        finally:
            self.systemd.stopping()
            self.status.shutting_down = True
            await self.systemd.stop_watchdog()
            await self.ops.stop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            log.info("stopped")

    async def _run_bot(self) -> int:
        token = self.settings.discord_token
        if token is None:  # load_settings requires it unless offline
            log.error("DISCORD_TOKEN is not set")
            return EXIT_CONFIG
        try:
            store = await StateStore.open(self.settings.state_dir, metrics=self.metrics)
        except StoreError as error:
            log.error("cannot use the state database", error=str(error))
            return EXIT_FAILURE
        try:
            return await self._run_client(token.reveal(), store)
        finally:
            await store.close()

    async def _warm_up_models(self, pipeline: VoicePipeline) -> None:
        try:
            await pipeline.runner.warm_up()
        except Exception as error:  # a provider that cannot load fails its turns, visibly
            log.error("loading a local speech model failed", error=str(error))

    def build_bot(self, store: StateStore) -> VoiceBot:
        """The Discord client with sessions, commands and the voice pipeline wired in."""
        settings = self.settings
        apply_endpoints(settings.discord_endpoints)
        shards = settings.sessions
        bot_class = VoiceBot if shards.shard_count is None else ShardedVoiceBot
        sharding: dict[str, object] = {}
        if shards.shard_count is not None:
            sharding = {"shard_count": shards.shard_count, "shard_ids": shards.shard_ids}
        bot = bot_class(
            self.status,
            connector=make_connector(settings.discord_endpoints),
            metrics=self.metrics,
            command_guild_id=settings.discord_guild_id,
            **sharding,
        )
        sessions = VoiceSessionManager(
            bot,
            store,
            status=self.status,
            metrics=self.metrics,
            policy=SessionPolicy(
                connect_timeout=settings.sessions.voice_connect_timeout_seconds,
                retry_wanted_after=settings.sessions.voice_rejoin_retry_seconds,
                retry_wanted_max=max(900.0, settings.sessions.voice_rejoin_retry_seconds),
                empty_channel_grace=settings.sessions.empty_channel_grace_seconds,
                idle_timeout=settings.sessions.idle_timeout_seconds,
                max_sessions=settings.sessions.max_sessions,
            ),
        )
        commands = VoiceCommands(
            sessions=sessions,
            store=store,
            limits=CommandLimits(
                settings.rate_limit_user_per_minute, settings.rate_limit_guild_per_minute
            ),
            metrics=self.metrics,
            default_wake_name=settings.speech.wake_name,
        )
        pipeline = VoicePipeline(
            bot,
            store,
            self.build_runner(settings, self.metrics),
            default_wake_name=settings.speech.wake_name,
            metrics=self.metrics,
            budgets=BudgetPolicy(
                stt_seconds=settings.sessions.budget_stt_seconds_per_day,
                tts_characters=settings.sessions.budget_tts_characters_per_day,
                llm_tokens=settings.sessions.budget_llm_tokens_per_day,
            ),
        )
        sessions.observer = pipeline
        commands.assistant = pipeline
        self.pipeline = pipeline
        bot.attach(sessions, commands)
        bot.tree.gate = self._gate
        self.bot, self.store = bot, store
        return bot

    async def _run_client(self, token: str, store: StateStore) -> int:
        bot = self.build_bot(store)
        if self.pipeline is not None:
            self._warm_up = asyncio.create_task(self._warm_up_models(self.pipeline))
        bot_task = asyncio.create_task(bot.start(token), name="discord-client")
        stop_task = asyncio.create_task(self.stop_requested.wait(), name="stop-requested")
        role_task = asyncio.create_task(self._take_initial_role(), name="initial-role")
        try:
            await asyncio.wait({bot_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
            role_task.cancel()
            self.status.shutting_down = True
            if self.slot.role == "active":
                await self.slot.set_role("standby")
            await bot.close()
            await asyncio.wait({bot_task})
            if self.pipeline is not None:
                await self.pipeline.close()
                await self.pipeline.runner.aclose()
        return _exit_code_for(bot_task, self.settings.discord_endpoints.api_base)


def build_turn_runner(settings: Settings, metrics: Metrics | None) -> TurnRunner:
    """The provider chains of ``settings`` behind one turn runner."""
    observer = provider_observer(metrics) if metrics is not None else None
    stt = build_stt_chain(settings, observer=observer)
    tts = build_tts_chain(settings, observer=observer)
    preload = tuple(
        cast("Preloadable", provider)
        for provider in (*stt.providers, *tts.providers)
        if callable(getattr(provider, "load", None))
    )
    return TurnRunner(
        stt=stt,
        agent=build_agent_chain(
            settings,
            observer=observer,
            usage_observer=agent_usage_recorder(metrics) if metrics else None,
        ),
        tts=CachedTextToSpeech(
            ChainTextToSpeech(tts, on_stats=tts_stats_recorder(metrics) if metrics else None)
        ),
        metrics=metrics,
        language=settings.speech.stt_language,
        vocabulary=(settings.speech.wake_name,),
        preload=preload,
    )


def _exit_code_for(bot_task: asyncio.Task[None], api_base: str) -> int:
    """Translate how the Discord client ended into a logged reason and an exit code."""
    error = bot_task.exception() if not bot_task.cancelled() else None
    if error is None:
        return EXIT_OK
    if isinstance(error, discord.LoginFailure):
        log.error("Discord rejected DISCORD_TOKEN; check the bot token", error=str(error))
        return EXIT_CONFIG
    if isinstance(error, discord.PrivilegedIntentsRequired):
        log.error("Discord refused the requested intents", error=str(error))
        return EXIT_CONFIG
    if isinstance(error, aiohttp.ClientConnectionError | OSError):
        log.error("cannot reach Discord", error=f"{api_base}: {type(error).__name__}: {error}")
        return EXIT_FAILURE
    log.error("the Discord client stopped with an error", exc_info=error)
    return EXIT_FAILURE
