"""A voice session's life after it started, through the real client and the fake Discord.

The bot is removed from the guild, its channel is deleted, or a moderator drags it into
another channel; and ``/voice status`` tells what a running session is doing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from openclaw_voice.audio.packets import OpusPacket
from openclaw_voice.discord.sessions import VoiceSession, VoiceSessionManager
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.pipeline.budget import BudgetPolicy
from openclaw_voice.pipeline.guild import GuildPipeline
from openclaw_voice.pipeline.manager import VoicePipeline
from openclaw_voice.pipeline.turn import TurnOutcome
from openclaw_voice.store.state import StoreError
from tests.fakes.discord import FakeDiscord, SimulatedUser
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.discord.test_commands import (
    Harness,
    bot_channel,
    start_harness,
    stop_harness,
)
from tests.integration.discord.tracebacks import logged_tracebacks
from tests.integration.fake_discord.helpers import tone


@pytest.fixture
async def harness(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> AsyncIterator[Harness]:
    started = await start_harness(fake_discord, discord_clients, tmp_path)
    try:
        yield started
    finally:
        await stop_harness(started, discord_clients)


def parts(harness: Harness) -> tuple[VoiceSessionManager, Metrics, VoicePipeline]:
    sessions, metrics, pipeline = harness.bot.sessions, harness.app.metrics, harness.app.pipeline
    assert sessions is not None
    assert metrics is not None
    assert pipeline is not None
    return sessions, metrics, pipeline


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


LogEntries = list[MutableMapping[str, Any]]


@contextmanager
def watching_logs(caplog: pytest.LogCaptureFixture) -> Iterator[LogEntries]:
    """Our structlog events (captured), and discord.py's and asyncio's records (caplog)."""
    previous = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with caplog.at_level(logging.INFO), capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(wrapper_class=previous)


def tracebacks(caplog: pytest.LogCaptureFixture, entries: LogEntries) -> list[str]:
    logged = logged_tracebacks(caplog.records)
    return logged + [str(e["event"]) for e in entries if e.get("exc_info")]


def end_reasons(entries: LogEntries) -> list[object]:
    return [e["context"]["reason"] for e in entries if e["event"] == "voice session ended"]


class Tap:
    """A packet sink in front of a guild's pipeline: forwards everything, counts per user
    and wakes waiters (the pipeline itself has nothing to wait on)."""

    def __init__(self, pipeline: GuildPipeline) -> None:
        self.pipeline = pipeline
        self.packets: dict[int, int] = {}
        self._changed = asyncio.Event()

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        self.pipeline.on_packet(user_id, packet)
        self.packets[user_id] = self.packets.get(user_id, 0) + 1
        self._changed.set()

    def on_user_left(self, user_id: int) -> None:
        self.pipeline.on_user_left(user_id)

    async def wait_until(self, condition: Callable[[], bool], within: float = 15.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def listening_in(harness: Harness, index: int = 0) -> tuple[VoiceSession, SimulatedUser]:
    """Alice joins voice channel ``index`` and starts the bot there; DAVE is set up."""
    fake = harness.fake
    channel = fake.voice_channel(index=index)
    alice = await fake.add_simulated_user("alice", channel=channel)
    text, _, _ = await harness.run("start", user=alice.user)
    assert text.startswith(f"Listening in <#{channel.id}>")
    sessions, _, _ = parts(harness)
    await fake.voice.calls[channel.id].wait_for_group({fake.world.bot.id, alice.user.id})
    return sessions.sessions[fake.guild.id], alice


async def hear(harness: Harness, speaker: SimulatedUser, frequency: float = 440.0) -> Tap:
    """``speaker`` talks in the bot's channel until the bot's pipeline has 25 packets of it."""
    fake = harness.fake
    sessions, _, pipeline = parts(harness)
    session = sessions.sessions[fake.guild.id]
    tap = Tap(pipeline.guilds[fake.guild.id])
    session.voice.listen(tap)
    await fake.recorder.wait_for(
        "dave_transition_executed", lambda e: e.data["channel_id"] == session.channel_id
    )
    await speaker.speak(tone(frequency, 0.8), realtime=True)
    try:
        await tap.wait_until(lambda: tap.packets.get(speaker.user.id, 0) >= 25)
    except TimeoutError:
        stats = session.voice.receiver.stats.snapshot()
        raise AssertionError(f"not heard: {tap.packets} {stats}") from None
    return tap


async def test_removal_from_the_guild_ends_the_session(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = harness.fake
    sessions, metrics, pipeline = parts(harness)
    with watching_logs(caplog) as entries:
        session, _ = await listening_in(harness)
        assert sample(metrics, "pipeline_active_sessions") == 1
        guild_id = fake.guild.id
        assert guild_id in pipeline.guilds

        removed_at = time.monotonic()
        await fake.remove_bot_from_guild()
        await sessions.wait_until(lambda: not sessions.sessions, within=10)
        # Discord leaves the voice websocket open: the bot must close it itself, and at
        # once (nothing will confirm the leave: the guild's events no longer come).
        await fake.recorder.wait_for(
            "voice_ws_closed", lambda e: e.data["guild_id"] == guild_id, within=10
        )
        took = time.monotonic() - removed_at

    assert took < 5.0, f"leaving a guild we were removed from took {took:.1f} s"
    assert harness.bot.get_guild(guild_id) is None
    assert not session.voice.is_connected()
    assert harness.bot.voice_clients == []
    assert guild_id not in pipeline.guilds  # the pipeline let go of the session
    assert await harness.store.desired_presence() == []
    assert sample(metrics, "discord_voice_disconnect_total", reason="requested") == 1
    assert sample(metrics, "pipeline_active_sessions") == 0
    assert end_reasons(entries) == ["guild_removed"]
    assert tracebacks(caplog, entries) == []


async def test_deleting_the_channel_ends_the_session(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = harness.fake
    sessions, metrics, pipeline = parts(harness)
    with watching_logs(caplog) as entries:
        session, _ = await listening_in(harness)
        channel = fake.voice_channel()
        await fake.delete_channel(channel)
        await sessions.wait_until(lambda: not sessions.sessions, within=10)
        # A round trip: whatever the deletion set off on the bot's loop has run by now.
        text, _, _ = await harness.run("status")

    assert "Not in a voice channel." in text
    assert not session.voice.is_connected()
    assert harness.bot.voice_clients == []
    assert await bot_channel(fake) is None
    assert fake.guild.id not in pipeline.guilds
    assert await harness.store.desired_presence() == []
    assert sample(metrics, "discord_voice_disconnect_total", reason="requested") == 1
    assert sample(metrics, "discord_voice_disconnect_total", reason="disconnected") == 0
    assert sample(metrics, "pipeline_active_sessions") == 0
    assert end_reasons(entries) == ["channel_deleted"]
    assert tracebacks(caplog, entries) == []


@pytest.mark.parametrize("close_code", [None, 4014], ids=["updates only", "old socket closed"])
async def test_a_moved_bot_listens_in_the_new_channel(
    harness: Harness, caplog: pytest.LogCaptureFixture, close_code: int | None
) -> None:
    fake = harness.fake
    sessions, metrics, pipeline = parts(harness)
    first, _ = await listening_in(harness, index=0)
    old, new = fake.voice_channel(index=0), fake.voice_channel(index=1)
    bob = await fake.add_simulated_user("bob", channel=new)
    before = await fake.voice.wait_for_connection(fake.guild.id)
    conversation = pipeline.guilds[fake.guild.id]

    with watching_logs(caplog) as entries:
        await fake.move_bot(new, close_code=close_code)
        await fake.voice.calls[new.id].wait_for_group({fake.world.bot.id, bob.user.id})
        await sessions.wait_until(lambda: first.channel_id == new.id, within=10)
        await hear(harness, bob)

    assert sessions.sessions[fake.guild.id] is first  # the same session, not a new one
    assert first.voice.is_connected()
    assert first.voice.channel.id == new.id
    assert pipeline.guilds[fake.guild.id] is conversation  # and the same conversation
    after = await fake.voice.wait_for_connection(fake.guild.id)
    assert after is not before
    assert after.channel_id == new.id
    assert fake.world.bot.id not in fake.voice.calls[old.id].members()
    assert await bot_channel(fake) == new.id
    assert [p.channel_id for p in await harness.store.desired_presence()] == [new.id]
    # A move is not a lost connection: no leave, no rejoin, no second join.
    joins = [
        e for e in fake.recorder.of_kind("gateway_voice_state") if e.data["data"]["channel_id"]
    ]
    assert len(joins) == 1
    assert sample(metrics, "discord_voice_disconnect_total", reason="lost") == 0
    assert sample(metrics, "discord_voice_connect_total", status="success") == 1
    assert end_reasons(entries) == []
    assert tracebacks(caplog, entries) == []

    # The bot now follows the humans of its new channel: alone there, it leaves.
    await fake.move_simulated_user(bob, None)
    await sessions.wait_until(lambda: not sessions.sessions, within=10)
    assert await harness.store.desired_presence() == []


async def test_status_reports_channel_mode_speakers_latency_and_budget(
    harness: Harness,
) -> None:
    fake = harness.fake
    _, _, pipeline = parts(harness)
    pipeline.budgets = BudgetPolicy(stt_seconds=600, tts_characters=20_000, llm_tokens=50_000)
    session, alice = await listening_in(harness)
    await harness.run("settings", options={"mode": "wake", "wake_name": "Jarvis"})
    await hear(harness, alice)
    # A finished voice turn (the full pipeline runs in tests/e2e; here only its result).
    pipeline.guilds[fake.guild.id].last_outcome = TurnOutcome(
        "completed", transcript="hi", reply="hello", timings={"e2e": 0.84}
    )
    await harness.store.add_usage(fake.guild.id, "stt_seconds", 150)
    await harness.store.add_usage(fake.guild.id, "tts_characters", 5_000)
    await harness.store.add_usage(fake.guild.id, "llm_tokens", 60_000)

    text, ephemeral, _ = await harness.run("status", user=alice.user)

    assert ephemeral
    lines = text.splitlines()
    assert lines[0].startswith(f"Listening in <#{session.channel_id}> for ")
    assert "Mode: wake; wake name: Jarvis; end of speech: 500 ms." in lines
    assert "Speakers heard: 1." in lines
    assert "Last turn: first audio 840 ms after you stopped." in lines
    assert (
        "Budget left today: 7.5 min of listening, 15000 characters of speech, "
        "0 agent tokens (used up)." in lines
    )


async def test_status_without_budgets_or_turns(harness: Harness) -> None:
    _, _, pipeline = parts(harness)
    assert not pipeline.budgets.limited
    text, ephemeral, _ = await harness.run("status")
    assert ephemeral
    assert text.splitlines() == [
        "Not in a voice channel.",
        "Mode: auto; wake name: OpenClaw; end of speech: 500 ms.",
        "Budget: no daily limit.",
    ]


async def test_status_when_usage_cannot_be_read(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, pipeline = parts(harness)
    pipeline.budgets = BudgetPolicy(llm_tokens=1000)

    async def broken(guild_id: int) -> dict[str, float]:
        raise StoreError("read_usage", "database is locked")

    monkeypatch.setattr(harness.store, "usage", broken)
    text, ephemeral, _ = await harness.run("status")
    assert ephemeral
    assert text.splitlines()[-1] == "Budget left today: unknown right now."
