"""The bot under load, in its own process: ``python -m tests.load.bot`` (started by the harness).

It is the real application: ``Application.build_bot`` (discord.py client, session manager,
commands, ``VoicePipeline`` with its receive path, VAD, turn runner and playback), with
one difference: the turn runner's providers (``Application(build_runner=...)``) are the
in-process fakes of ``tests/load/providers.py`` behind the real fallback chains, TTS cache
and metrics. Logs are JSON at the production level, into a file.

Protocol (JSON lines): the first line on stdin is the run's setup; then the commands
``{"op": "join"}``, ``{"op": "outage", "stage": "stt", "down": true}`` and
``{"op": "stop"}`` (SIGTERM stops it too, with the same shutdown:
drain the replies in progress, leave voice, keep the recorded presence). Events go to
stdout: ``ready``, ``joined``,
``turn`` (one per finished turn), ``sample`` (every second: asyncio tasks, threads,
event-loop lag) and ``final`` (counters), then ``exited``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import discord
import structlog

from openclaw_voice.agent.base import AgentSession
from openclaw_voice.agent.registry import agent_policy
from openclaw_voice.app import Application
from openclaw_voice.config import Settings, load_settings
from openclaw_voice.discord import voice_client
from openclaw_voice.discord.playback import StreamingSource
from openclaw_voice.discord.voice_client import ListeningVoiceClient
from openclaw_voice.errors import Stage
from openclaw_voice.ops.logging import configure_logging
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.provider_metrics import provider_observer, tts_stats_recorder
from openclaw_voice.ops.redaction import Redactor
from openclaw_voice.pipeline.turn import AudioOut, TurnOutcome, TurnRequest, TurnRunner
from openclaw_voice.resilience import Attempt, FallbackChain
from openclaw_voice.store.state import GuildSettings, StateStore
from openclaw_voice.stt.registry import stt_policy
from openclaw_voice.tts.base import TextToSpeech
from openclaw_voice.tts.cache import CachedTextToSpeech
from openclaw_voice.tts.registry import ChainTextToSpeech, tts_policy
from tests.load.profile import LoadProfile, outage_stages
from tests.load.providers import (
    WAKE_NAME,
    Ledgers,
    LoadAgent,
    LoadSpeechToText,
    LoadTextToSpeech,
    TurnLedger,
)

log = structlog.get_logger(__name__)

Emit = Callable[[dict[str, Any]], None]


def _opus_complexity(level: int) -> None:
    """Replies encoded at another Opus complexity (the bot's is REPLY_ENCODER_COMPLEXITY)."""
    voice_client.REPLY_ENCODER_COMPLEXITY = level


def _feeder_low_water() -> None:
    """Playback wakes its feeder once half the buffer has played, not after every frame."""

    def wake(self: StreamingSource) -> None:
        if self._waiting and len(self._frames) <= self.settings.buffer_frames // 2:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._space.set)

    StreamingSource._wake_feeder = wake  # type: ignore[method-assign]


def _voice_encoder() -> None:
    """Replies encoded as speech: Opus signal type voice, 64 kbit/s (discord.py: auto, 128)."""
    original = ListeningVoiceClient.play

    def play(self: ListeningVoiceClient, source: discord.AudioSource, **kwargs: Any) -> None:
        kwargs.setdefault("signal_type", "voice")
        kwargs.setdefault("bitrate", 64)
        original(self, source, **kwargs)

    ListeningVoiceClient.play = play  # type: ignore[method-assign,assignment]


# What-if changes to the application, patched into this process only when a profile asks
# (``--experiment``); none is used by the tests.
EXPERIMENTS: dict[str, Callable[[], None]] = {
    "opus-complexity-9": lambda: _opus_complexity(9),  # libopus' default, until 2026-11-28
    "opus-complexity-3": lambda: _opus_complexity(3),
    "feeder-low-water": _feeder_low_water,
    "voice-encoder": _voice_encoder,
    # The GIL is handed to a waiting thread after 5 ms by default: with a player and a
    # socket reader thread per voice connection, how much does the event loop wait?
    "switch-interval-1ms": lambda: sys.setswitchinterval(0.001),
    "switch-interval-20ms": lambda: sys.setswitchinterval(0.02),
}


def emitter(stream: TextIO) -> Emit:
    def emit(event: dict[str, Any]) -> None:
        stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        stream.flush()

    return emit


class LoadTurnRunner(TurnRunner):
    """The real TurnRunner; reports every finished turn with its providers' share."""

    def __init__(
        self, *, ledgers: Ledgers, emit: Emit, end_of_speech: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.ledgers = ledgers
        self.emit = emit
        self.end_of_speech = end_of_speech
        self.statuses: Counter[str] = Counter()
        self.errors_by_code: Counter[int] = Counter()

    async def run(
        self,
        request: TurnRequest,
        session: AgentSession,
        out: AudioOut | None,
        *,
        accept: Callable[[str], str | None] = lambda text: text,
        outcome: TurnOutcome | None = None,
    ) -> TurnOutcome:
        outcome = outcome if outcome is not None else TurnOutcome("completed")
        ledger = self.ledgers.begin(request.guild_id)
        try:
            return await super().run(request, session, out, accept=accept, outcome=outcome)
        finally:
            self._report(request, outcome, ledger)

    def _report(self, request: TurnRequest, outcome: TurnOutcome, ledger: TurnLedger) -> None:
        self.statuses[outcome.status] += 1
        code = outcome.error.code if outcome.error is not None else None
        if code is not None:
            self.errors_by_code[code] += 1
        timings = outcome.timings
        floor = ledger.provider_floor
        overhead = None
        clean = not ledger.injected and outcome.status == "completed"
        if clean and floor is not None and "e2e" in timings:
            overhead = timings["e2e"] - timings["end_of_utterance"] - floor
        utterance = request.utterance
        self.emit(
            {
                "event": "turn",
                "guild_id": request.guild_id,
                "user_id": request.user_id,
                "status": outcome.status,
                "code": code,
                "first_voiced_at": utterance.first_voiced_at if utterance else None,
                "last_voiced_at": utterance.last_voiced_at if utterance else None,
                "first_audio_at": outcome.first_audio_at,
                "timings": timings,
                "provider_floor": floor,
                "overhead": overhead,
                "end_of_speech": self.end_of_speech,
                "injected": ledger.injected,
                "reply_chars": len(outcome.reply),
            }
        )


class AttemptLog:
    """Chain observer: provider attempts that failed, by error code."""

    def __init__(self) -> None:
        self.errors_by_code: Counter[int] = Counter()
        self.attempts: Counter[str] = Counter()

    def __call__(self, attempt: Attempt) -> None:
        self.attempts[attempt.stage.name.lower()] += 1
        if attempt.error is not None:
            self.errors_by_code[attempt.error.code] += 1


def build_load_runner(
    settings: Settings,
    metrics: Metrics | None,
    ledgers: Ledgers,
    attempts: AttemptLog,
    emit: Emit,
) -> LoadTurnRunner:
    """What ``build_turn_runner`` builds, with the load fakes as the providers."""
    metric_observer = provider_observer(metrics) if metrics is not None else None

    def observer(attempt: Attempt) -> None:
        attempts(attempt)
        if metric_observer is not None:
            metric_observer(attempt)

    # A stage with outages in the profile gets a second, healthy provider to fall back to.
    backed = outage_stages(ledgers.profile)
    stt = FallbackChain(
        Stage.STT,
        [LoadSpeechToText(ledgers, backup=b) for b in (False, True)[: 1 + ("stt" in backed)]],
        stt_policy(settings),
        observer=observer,
    )
    agent = FallbackChain(
        Stage.AGENT,
        [LoadAgent(ledgers, backup=b) for b in (False, True)[: 1 + ("agent" in backed)]],
        agent_policy(settings),
        observer=observer,
    )
    speech: list[TextToSpeech] = [
        LoadTextToSpeech(ledgers, backup=b) for b in (False, True)[: 1 + ("tts" in backed)]
    ]
    tts = FallbackChain(Stage.TTS, speech, tts_policy(settings), observer=observer)
    return LoadTurnRunner(
        ledgers=ledgers,
        emit=emit,
        end_of_speech=GuildSettings(0).end_of_speech_ms / 1000,
        stt=stt,
        agent=agent,
        tts=CachedTextToSpeech(
            ChainTextToSpeech(tts, on_stats=tts_stats_recorder(metrics) if metrics else None)
        ),
        metrics=metrics,
        language=settings.speech.stt_language,
        vocabulary=(settings.speech.wake_name,),
    )


def settings_for(setup: dict[str, Any], profile: LoadProfile) -> Settings:
    env = {
        "APP_ENV": "development",
        "LOG_LEVEL": profile.log_level,
        "DISCORD_TOKEN": setup["token"],
        "DISCORD_API_BASE": setup["api_base"],
        "DISCORD_GATEWAY_URL": setup["gateway_url"],
        "DISCORD_CA_BUNDLE": setup["ca_bundle"],
        "STATE_DIR": setup["state_dir"],
        "WAKE_NAME": WAKE_NAME,
        "MAX_SESSIONS": str(max(profile.guilds, 1)),
        "IDLE_TIMEOUT_SECONDS": "86400",
        "EMPTY_CHANNEL_GRACE_SECONDS": "3600",
        "VOICE_CONNECT_TIMEOUT_SECONDS": "30",
        "DRAIN_SECONDS": "2",
        "PROMETHEUS_ENABLED": "true",
    }
    env.update(profile.settings)
    if profile.shard_count > 1:
        env["SHARD_COUNT"] = str(profile.shard_count)
        env["SHARD_IDS"] = ",".join(str(i) for i in range(profile.shard_count))
    return load_settings(env)


def metric_samples(metrics: Metrics | None, names: set[str]) -> dict[str, list[Any]]:
    """Every sample of the named metrics: name -> [[labels, value], ...]."""
    found: dict[str, list[Any]] = {}
    if metrics is None:
        return found
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name in names and sample.value:
                found.setdefault(sample.name, []).append([dict(sample.labels), sample.value])
    return found


class LoopLag:
    """Event-loop lag: how late a 100 ms timer fires; the worst since the last read."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            due = time.monotonic() + 0.1
            await asyncio.sleep(0.1)
            self.worst = max(self.worst, time.monotonic() - due)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


class LoadBot:
    def __init__(self, setup: dict[str, Any], emit: Emit) -> None:
        self.setup = setup
        self.emit = emit
        self.profile = LoadProfile.from_json(setup["profile"])
        for name in self.profile.experiments:
            EXPERIMENTS[name]()
        self.settings = settings_for(setup, self.profile)
        self.ledgers = Ledgers(self.profile)
        self.attempts = AttemptLog()
        self.unhandled: list[str] = []
        self.join_failures: list[str] = []
        self.runner: LoadTurnRunner | None = None
        self.app = Application(self.settings, build_runner=self._build_runner)
        self.stop = asyncio.Event()  # the harness's "stop", or SIGTERM as systemd sends it

    def _build_runner(self, settings: Settings, metrics: Metrics | None) -> LoadTurnRunner:
        self.runner = build_load_runner(settings, metrics, self.ledgers, self.attempts, self.emit)
        return self.runner

    def _exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.unhandled.append(str(context.get("exception") or context.get("message")))
        loop.default_exception_handler(context)

    async def _sample(self, lag: LoopLag) -> None:
        while True:
            await asyncio.sleep(1.0)
            pipeline = self.app.pipeline
            self.emit(
                {
                    "event": "sample",
                    "t": time.monotonic(),
                    "tasks": len(asyncio.all_tasks()),
                    "threads": threading.active_count(),
                    "loop_lag_ms": lag.take() * 1000,
                    "sessions": len(pipeline.guilds) if pipeline else 0,
                    "clock_skipped": pipeline.clock.skipped if pipeline else 0,
                }
            )

    async def _join(self, bot: discord.Client) -> None:
        sessions = getattr(bot, "sessions", None)
        assert sessions is not None
        limit = asyncio.Semaphore(self.profile.join_concurrency)
        started = time.monotonic()

        async def join(channel_id: int) -> None:
            async with limit:
                channel = bot.get_channel(channel_id)
                if not isinstance(channel, discord.VoiceChannel):
                    self.join_failures.append(f"{channel_id}: not a voice channel")
                    return
                try:
                    await sessions.start(channel, started_by=None, text_channel_id=None)
                except Exception as error:  # reported to the harness, which fails the run
                    self.join_failures.append(f"{channel_id}: {type(error).__name__}: {error}")

        await asyncio.gather(*(join(channel_id) for channel_id in self.setup["channels"]))
        self.emit(
            {
                "event": "joined",
                "sessions": len(sessions.sessions),
                "failures": self.join_failures,
                "seconds": time.monotonic() - started,
            }
        )

    async def _final(self) -> dict[str, Any]:
        pipeline = self.app.pipeline
        store = self.app.store
        presence = len(await store.desired_presence()) if store is not None else 0
        bot = self.app.bot
        receive: Counter[str] = Counter()
        sessions = getattr(bot, "sessions", None)
        if sessions is not None:
            for session in sessions.sessions.values():
                receive.update(session.voice.receiver.stats.snapshot())
        runner = self.runner
        cache = runner.tts if runner is not None else None
        return {
            "event": "final",
            "sessions_at_end": len(sessions.sessions) if sessions is not None else 0,
            # The voice connections discord.py itself still routes voice events to.
            "discord_voice_clients": len(bot.voice_clients) if bot is not None else 0,
            "presence_at_end": presence,
            "statuses": dict(runner.statuses) if runner else {},
            "turn_errors_by_code": dict(runner.errors_by_code) if runner else {},
            "provider_errors_by_code": dict(self.attempts.errors_by_code),
            "provider_attempts": dict(self.attempts.attempts),
            "injected_by_code": dict(self.ledgers.injected_by_code),
            "provider_calls": dict(self.ledgers.calls),
            "provider_served": dict(self.ledgers.served),
            "receive": dict(receive),
            "clock_skipped": pipeline.clock.skipped if pipeline else 0,
            "clock_ticks": pipeline.clock.ticks if pipeline else 0,
            "clock_max_tick_ms": pipeline.clock.max_tick_seconds * 1000 if pipeline else 0,
            "tts_cache_hits": cache.hits if isinstance(cache, CachedTextToSpeech) else 0,
            "unhandled": self.unhandled,
            "metrics": metric_samples(
                self.app.metrics,
                {
                    "audio_frames_dropped_total",
                    "audio_frames_concealed_total",
                    "pipeline_error_total",
                    "pipeline_turns_total",
                    "pipeline_recovery_failure_total",
                    "discord_voice_disconnect_total",
                    "discord_gateway_disconnect_total",
                    "store_errors_total",
                },
            ),
        }

    async def run(self, commands: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._exception_handler)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)  # kill -USR1: where is it stuck?
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        store = await StateStore.open(self.settings.state_dir, metrics=self.app.metrics)
        bot = self.app.build_bot(store)
        pipeline = self.app.pipeline
        assert pipeline is not None

        async def no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
            return None  # the fake has no IDENTIFY rate limit

        bot.before_identify_hook = no_identify_wait  # type: ignore[method-assign]
        lag = LoopLag()
        background = [
            asyncio.create_task(bot.start(self.setup["token"]), name="discord-client"),
            asyncio.create_task(lag.run(), name="loop-lag"),
            asyncio.create_task(self._sample(lag), name="sampler"),
        ]
        try:
            await self.app.slot.set_role("active")  # waits for the gateway, syncs commands
            self.emit({"event": "ready", "t": time.monotonic()})
            reader = asyncio.create_task(self._commands(commands, bot), name="commands")
            await self.stop.wait()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self.emit(await self._final())
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.app.slot.set_role("standby"), 60)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.close(), 30)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await pipeline.close()
            await pipeline.runner.aclose()
            await store.close()

    async def _commands(self, commands: asyncio.StreamReader, bot: discord.Client) -> None:
        while line := await commands.readline():
            command = json.loads(line)
            if command["op"] == "join":
                await self._join(bot)
            elif command["op"] == "outage":
                if command["down"]:
                    self.ledgers.down.add(command["stage"])
                else:
                    self.ledgers.down.discard(command["stage"])
            elif command["op"] == "stop":
                break
        self.stop.set()


def dump_tasks() -> None:
    """Every asyncio task's await chain, to stderr (the harness keeps it as ``bot.stderr``)."""
    for task in asyncio.all_tasks():
        lines = [f"--- {task.get_name()}"]
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                lines.append(
                    f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
                )
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def open_log(path: Path) -> TextIO:
    return path.open("a", encoding="utf-8")


async def main() -> None:
    emit = emitter(sys.stdout)
    commands = await stdin_reader()
    setup = json.loads(await commands.readline())
    log_file = open_log(Path(setup["log_path"]))
    try:
        configure_logging(
            level=LoadProfile.from_json(setup["profile"]).log_level,
            service="openclaw-voice",
            environment="production",
            redactor=Redactor([setup["token"]]),
            stream=log_file,
        )
        await LoadBot(setup, emit).run(commands)
    finally:
        emit({"event": "exited"})
        log_file.close()


if __name__ == "__main__":
    if not discord.opus.is_loaded():
        discord.opus._load_default()
    asyncio.run(main())
