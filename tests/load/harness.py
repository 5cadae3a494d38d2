"""One load run: the fake Discord and the conversations here, the bot in its own process.

The fake Discord (with every simulated speaker, their DAVE sessions, the pacer that sends
their speech in real time, and the decoding of the bot's replies) runs in this process's
event loop; the bot runs as ``python -m tests.load.bot``, so its CPU, memory, threads and
file descriptors are its own and are read from /proc. The two share the machine's
monotonic clock, so latencies are measured across them.

    data = await run_load(LoadProfile(guilds=10, turns=5), Path("build/load"))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from openclaw_voice.store.migrate import database_path
from tests.fakes.discord import FakeDiscord, PacketFaults
from tests.load.driver import GuildConversation
from tests.load.events import EventContext, clockshift_environment, perform
from tests.load.monitor import ProcessMonitor
from tests.load.profile import CLOCK_EVENTS, LoadProfile
from tests.load.speech import question_clips
from tests.load.storage import BotStorage

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parents[2]


class BotProcessError(RuntimeError):
    """The bot's process ended or did not answer in time."""


@dataclass
class RunData:
    """Everything one run collected; ``tests.load.report`` turns it into the report."""

    profile: LoadProfile
    started: str  # ISO wall-clock time
    cores: int
    load_average: dict[str, list[float]] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # monotonic times
    join: dict[str, Any] = field(default_factory=dict)
    turns: list[dict[str, Any]] = field(default_factory=list)
    bot_samples: list[dict[str, Any]] = field(default_factory=list)
    proc_samples: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    send_lateness: list[float] = field(default_factory=list)
    capture_failures: dict[str, int] = field(default_factory=dict)
    fake_errors: list[str] = field(default_factory=list)
    log_levels: dict[str, int] = field(default_factory=dict)
    log_errors: list[str] = field(default_factory=list)
    guild_ids: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # disruptions carried out
    gateway: dict[str, int] = field(default_factory=dict)  # what the fake's gateway saw
    exit_code: int | None = None
    harness_cpu_seconds: float = 0.0
    failure: str | None = None


class BotProcess:
    """The bot's process: JSON-line commands in, events out (see ``tests/load/bot.py``)."""

    def __init__(
        self, process: asyncio.subprocess.Process, conversations: dict[int, GuildConversation]
    ) -> None:
        self.process = process
        self.conversations = conversations
        self.samples: list[dict[str, Any]] = []
        self.unrouted_turns = 0
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._received: dict[str, dict[str, Any]] = {}
        self._reader = asyncio.create_task(self._read(), name="bot-events")

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            raise BotProcessError("the bot's stdin is closed")
        stdin.write((json.dumps(message) + "\n").encode())

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                if not line.startswith(b'{"event"'):
                    continue  # not ours (a library printing to stdout)
                event = json.loads(line)
                kind = event["event"]
                if kind == "turn":
                    conversation = self.conversations.get(int(event["guild_id"]))
                    if conversation is None:
                        self.unrouted_turns += 1
                    else:
                        conversation.events.put_nowait(event)
                elif kind == "sample":
                    self.samples.append(event)
                else:
                    self._received[kind] = event
                    waiter = self._waiting.pop(kind, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(event)
        finally:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(BotProcessError("the bot's process ended"))

    async def wait(self, kind: str, within: float) -> dict[str, Any]:
        """The bot's ``kind`` event (already received, or within ``within`` seconds)."""
        if kind in self._received:
            return self._received[kind]
        if self._reader.done():
            raise BotProcessError(f"the bot's process ended before {kind!r}")
        waiter = self._waiting.setdefault(kind, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), within)
        except TimeoutError:
            raise BotProcessError(f"no {kind!r} from the bot within {within:.0f} s") from None

    async def close(self, within: float = 90.0) -> int | None:
        """Wait for the bot to exit; terminate it (then kill) when it does not."""
        process = self.process
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            log.warning("the bot did not exit; terminating it", pid=process.pid)
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        return process.returncode


def read_log(path: Path) -> tuple[dict[str, int], list[str]]:
    """Lines per level in the bot's JSON log, and the error-level messages (first 50)."""
    levels: Counter[str] = Counter()
    errors: list[str] = []
    if not path.exists():
        return {}, []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            levels["unparsed"] += 1
            continue
        level = str(record.get("level", "unknown"))
        levels[level] += 1
        if level in ("error", "critical") and len(errors) < 50:
            errors.append(f"{record.get('message')}: {record.get('error', '')}")
    return dict(levels), errors


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _wait_for_calls(fake: FakeDiscord, conversations: list[GuildConversation]) -> None:
    """Every bot voice connection up and, with DAVE, each call's group formed."""

    async def ready(conversation: GuildConversation) -> None:
        guild = fake.world.guilds[conversation.guild_id]
        channel = guild.voice_channels()[0]
        await fake.voice.wait_for_connection(conversation.guild_id, within=60)
        if fake.voice.dave_protocol_version:
            members = {fake.world.bot.id, *(sim.user.id for sim in conversation.speakers)}
            await fake.voice.calls[channel.id].wait_for_group(members, within=60)
            await fake.recorder.wait_for(
                "dave_transition_executed",
                lambda e: e.data["channel_id"] == channel.id,
                within=60,
            )

    await asyncio.gather(*(ready(c) for c in conversations))


async def _disrupt(context: EventContext, data: RunData, start: float) -> None:
    """Carry out the profile's events at their times (pacing, like the speakers)."""
    for at, action in sorted(data.profile.events):
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        begun = time.monotonic() - data.phases["spawned"]
        observed = await perform(action, context)
        data.events.append({"t": begun, "action": action, **observed})


async def run_load(profile: LoadProfile, out_dir: Path) -> RunData:
    """Run ``profile`` once; the bot's log and stderr go to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = RunData(
        profile,
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        os.cpu_count() or 0,
        load_average={"start": list(os.getloadavg())},
    )
    clips = await question_clips()
    cpu_before = _cpu_seconds()
    fake = FakeDiscord(
        seed=profile.seed, guilds=profile.guilds, dave_protocol_version=1 if profile.dave else 0
    )
    fake.recommended_shards = profile.shard_count
    fake.voice_update_gap = 0.05  # the bot is a separate, busy process
    await fake.start()
    bot: BotProcess | None = None
    monitor: ProcessMonitor | None = None
    conversations: list[GuildConversation] = []
    try:
        for index, guild in enumerate(fake.world.guilds.values()):
            channel = guild.voice_channels()[0]
            speakers = [
                await fake.add_simulated_user(f"speaker-{index}-{n}", guild=guild, channel=channel)
                for n in range(profile.speakers)
            ]
            conversations.append(
                GuildConversation(fake, guild.id, speakers, clips, profile=profile, index=index)
            )
            data.guild_ids.append(guild.id)
        with (
            tempfile.TemporaryDirectory(prefix="load-state-") as state,
            (out_dir / "bot.stderr").open("wb") as stderr,
            BotStorage.prepare(profile, Path(state), out_dir) as storage,
        ):
            (out_dir / "bot.log").unlink(missing_ok=True)
            endpoints = fake.endpoints
            environment = dict(os.environ)
            clock_file = None
            if CLOCK_EVENTS & {action for _, action in profile.events}:
                shifted, clock_file = clockshift_environment(out_dir)
                environment.update(shifted)
            process = await asyncio.create_subprocess_exec(
                *storage.command([sys.executable, "-m", "tests.load.bot"]),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
                env=environment,
                limit=1 << 24,
            )
            data.phases["spawned"] = time.monotonic()
            bot = BotProcess(process, {c.guild_id: c for c in conversations})
            storage.follow(bot)
            monitor = ProcessMonitor(process.pid)
            monitor.start()
            bot.send(
                {
                    "profile": profile.to_json(),
                    "token": fake.token,
                    "api_base": endpoints.api_base,
                    "gateway_url": endpoints.gateway_url,
                    "ca_bundle": str(endpoints.ca_bundle),
                    "state_dir": state,
                    "log_path": str(storage.log_path),
                    "channels": [c.speakers[0].guild.voice_channels()[0].id for c in conversations],
                }
            )
            context = EventContext(
                fake, conversations, process.pid, bot.send, clock_file, storage=storage
            )
            await _run(bot, monitor, context, data, Path(state))
    except Exception as error:
        data.failure = f"{type(error).__name__}: {error}"
        log.error("load run failed", error=data.failure)
        raise
    finally:
        if bot is not None:
            data.exit_code = await bot.close()
            data.bot_samples = bot.samples
        if monitor is not None:
            await monitor.stop()
            data.proc_samples = [s.as_json() for s in monitor.samples]
        data.fake_errors = [str(e.data) for e in fake.recorder.of_kind("fake_error")]
        data.gateway = {
            kind: len(fake.recorder.of_kind(f"gateway_{kind}"))
            for kind in ("identify", "resumed", "resume_rejected", "drop")
        }
        await fake.stop()
        data.harness_cpu_seconds = _cpu_seconds() - cpu_before
        data.load_average["end"] = list(os.getloadavg())
        data.log_levels, data.log_errors = read_log(out_dir / "bot.log")
    return data


async def _run(
    bot: BotProcess,
    monitor: ProcessMonitor,
    context: EventContext,
    data: RunData,
    state_dir: Path,
) -> None:
    fake, conversations, profile = context.fake, context.conversations, data.profile
    ready = await bot.wait("ready", 120)
    data.phases["ready"] = ready["t"]
    monitor.sample_now()
    data.phases["join"] = time.monotonic()
    bot.send({"op": "join"})
    joined = await bot.wait("joined", 60 + 2.0 * profile.guilds)
    data.join = joined
    if joined["failures"]:
        raise BotProcessError(f"joins failed: {joined['failures'][:5]}")
    await _wait_for_calls(fake, conversations)
    data.phases["joined"] = time.monotonic()
    monitor.sample_now()

    if profile.packets:
        fake.controls.packets = PacketFaults(**profile.packets)
    data.phases["conversation"] = start = time.monotonic()
    deadline = start + profile.seconds if profile.seconds is not None else None
    if profile.turns is not None:
        bound = profile.stagger + profile.turns * (profile.reply_timeout + 60)
    else:
        assert profile.seconds is not None
        bound = profile.seconds + profile.reply_timeout + 60
    disruptions = asyncio.create_task(_disrupt(context, data, start), name="disruptions")
    try:
        await asyncio.wait_for(asyncio.gather(*(c.run(deadline) for c in conversations)), bound)
    finally:
        data.phases["conversation_end"] = time.monotonic()
        if not disruptions.done():
            disruptions.cancel()
        (disrupted,) = await asyncio.gather(disruptions, return_exceptions=True)
        for conversation in conversations:
            conversation.finish()
            data.turns.extend(
                result.as_json(data.phases["spawned"]) for result in conversation.results
            )
            data.send_lateness.extend(conversation.send_lateness)
            for name, count in conversation.capture_failures.items():
                data.capture_failures[name] = data.capture_failures.get(name, 0) + count
    if isinstance(disrupted, Exception):
        raise BotProcessError(f"an event failed: {type(disrupted).__name__}: {disrupted}")
    monitor.sample_now()
    data.phases["stop"] = time.monotonic()
    with contextlib.suppress(BotProcessError):
        bot.send({"op": "stop"})
    data.final = await bot.wait("final", 60)
    data.final["unrouted_turns"] = bot.unrouted_turns
    data.final["extra_reports"] = sum(c.extra_reports for c in conversations)
    await bot.wait("exited", 120)
    data.phases["stopped"] = time.monotonic()
    # What a restart would rejoin, and where the fake still sees the bot in voice.
    data.final["presence_after_exit"] = recorded_presence(state_dir)
    data.final["in_voice_after_exit"] = sorted(
        guild.id for guild in fake.world.guilds.values() if fake.world.bot.id in guild.voice_states
    )


def recorded_presence(state_dir: Path) -> list[int]:
    """The guilds whose voice channel the state database says the bot should be in."""
    with contextlib.closing(sqlite3.connect(database_path(state_dir))) as db:
        rows = db.execute(
            "SELECT guild_id FROM guild_voice_state WHERE desired = 1 AND channel_id IS NOT NULL"
        ).fetchall()
    return sorted(int(row[0]) for row in rows)
