"""Voice connections that Discord ends or never completes, through the fake Discord.

4006 (session no longer valid) and 4015 (voice server crashed) make the bot rejoin its
channel with a fresh connection; a moderator's kick (4014) is honoured; a join Discord
leaves unanswered gives up after VOICE_CONNECT_TIMEOUT_SECONDS per attempt and 3 attempts
with a clear message, a metric and the state left as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
from structlog.testing import capture_logs

from openclaw_voice.discord.sessions import (
    SessionObserver,
    VoiceSession,
    VoiceSessionManager,
    humans_in,
)
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.store.state import VoicePresence
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.discord.test_commands import (
    Harness,
    bot_channel,
    start_harness,
    stop_harness,
)
from tests.integration.discord.tracebacks import logged_tracebacks


@pytest.fixture
async def harness(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> AsyncIterator[Harness]:
    started = await start_harness(
        fake_discord, discord_clients, tmp_path, VOICE_CONNECT_TIMEOUT_SECONDS="1"
    )
    try:
        yield started
    finally:
        await stop_harness(started, discord_clients)


def parts(harness: Harness) -> tuple[VoiceSessionManager, Metrics]:
    sessions, metrics = harness.bot.sessions, harness.app.metrics
    assert sessions is not None
    assert metrics is not None
    return sessions, metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def joins(fake: FakeDiscord) -> list[int]:
    """Channels of the bot's op 4 joins (leaves left out), in order."""
    ops = fake.recorder.of_kind("gateway_voice_state")
    return [int(e.data["data"]["channel_id"]) for e in ops if e.data["data"]["channel_id"]]


def out_of_voice(harness: Harness) -> bool:
    """The bot has seen Discord confirm that it is in no voice channel of the guild."""
    guild = harness.bot.get_guild(harness.fake.guild.id)
    assert guild is not None
    assert guild.me is not None
    return guild.me.voice is None or guild.me.voice.channel is None


async def listening(harness: Harness) -> VoiceSession:
    """Alice joins the first voice channel and starts the bot there."""
    fake = harness.fake
    alice = await fake.add_simulated_user("alice", channel=fake.voice_channel())
    text, _, _ = await harness.run("start", user=alice.user)
    assert text.startswith("Listening in")
    sessions, _ = parts(harness)
    return sessions.sessions[fake.guild.id]


@pytest.mark.parametrize("code", [4006, 4009, 4015])
async def test_a_lost_voice_session_is_rejoined(harness: Harness, code: int) -> None:
    fake = harness.fake
    sessions, metrics = parts(harness)
    first = await listening(harness)
    channel = fake.voice_channel()
    call = fake.voice.calls[channel.id]
    members = set(call.members())
    assert fake.world.bot.id in members
    old = await fake.voice.wait_for_connection(fake.guild.id)

    await fake.voice.close_voice(fake.guild.id, code)
    await sessions.wait_until(
        lambda: fake.guild.id in sessions.sessions and sessions.sessions[fake.guild.id] is not first
    )

    second = sessions.sessions[fake.guild.id]
    assert second.voice.is_connected()
    assert not first.voice.is_connected()
    assert (second.channel_id, second.started_by) == (channel.id, first.started_by)
    assert await bot_channel(fake) == channel.id
    assert joins(fake) == [channel.id, channel.id]  # one fresh join, no op 4 resume loop
    assert len(fake.recorder.of_kind("voice_identify")) == 2
    assert await fake.voice.wait_for_connection(fake.guild.id) is not old
    await call.wait_for_group(members)  # end-to-end encryption set up again with Alice
    assert [p.channel_id for p in await harness.store.desired_presence()] == [channel.id]
    assert sample(metrics, "discord_voice_disconnect_total", reason="lost") == 1
    assert sample(metrics, "discord_voice_connect_total", status="success") == 2
    assert sample(metrics, "discord_voice_connect_total", status="failure") == 0


class HeldStart:
    """The session observer, with the next session's start held until ``release``: the
    window in which a rejoin has its new connection but has not finished."""

    def __init__(self, observer: SessionObserver | None) -> None:
        self.observer = observer
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def session_started(self, session: VoiceSession) -> None:
        self.holding.set()
        await self.release.wait()
        if self.observer is not None:
            await self.observer.session_started(session)

    async def session_ending(self, session: VoiceSession, reason: str) -> None:
        if self.observer is not None:
            await self.observer.session_ending(session, reason)


async def test_a_connection_lost_while_its_rejoin_finishes_is_rejoined_again(
    harness: Harness,
) -> None:
    """4015 right after a 4006 rejoin connected, before the rejoin was over: the second
    loss was ignored and the bot stayed without voice (a CI failure). Here discord.py's
    DAVE handler also fails answering on the closing websocket, which ended its poller
    without a word; both must end in a third connection."""
    fake = harness.fake
    sessions, metrics = parts(harness)
    first = await listening(harness)
    observer = sessions.observer
    held = HeldStart(observer)
    sessions.observer = held

    await fake.voice.close_voice(fake.guild.id, 4006)
    await asyncio.wait_for(held.holding.wait(), 10)
    second = sessions.sessions[fake.guild.id]
    assert second is not first
    assert sessions.rejoining == {fake.guild.id}
    report_lost = second.voice.on_connection_lost
    assert report_lost is not None
    lost = asyncio.Event()

    def reported(code: int | None) -> None:
        report_lost(code)
        lost.set()

    second.voice.on_connection_lost = reported
    await fake.voice.close_voice(fake.guild.id, 4015)
    await asyncio.wait_for(lost.wait(), 10)
    sessions.observer = observer
    held.release.set()

    await sessions.wait_until(
        lambda: (
            not sessions.rejoining
            and fake.guild.id in sessions.sessions
            and sessions.sessions[fake.guild.id] not in (first, second)
        )
    )
    third = sessions.sessions[fake.guild.id]
    assert third.voice.is_connected()
    assert await bot_channel(fake) == first.channel_id
    assert joins(fake) == [first.channel_id] * 3
    assert sample(metrics, "discord_voice_disconnect_total", reason="lost") == 2
    assert [p.channel_id for p in await harness.store.desired_presence()] == [first.channel_id]


@pytest.mark.parametrize("case", ["rate limited", "rejoins spent"])
async def test_no_rejoin_when_discord_says_no_or_after_too_many(
    harness: Harness, case: str
) -> None:
    fake = harness.fake
    sessions, metrics = parts(harness)
    session = await listening(harness)
    code = 4006
    if case == "rate limited":
        code = 4021
    else:
        sessions.policy = dataclasses.replace(sessions.policy, max_rejoins=1)
        await fake.voice.close_voice(fake.guild.id, 4006)
        await sessions.wait_until(
            lambda: (
                fake.guild.id in sessions.sessions
                and sessions.sessions[fake.guild.id] is not session
            )
        )

    await fake.voice.close_voice(fake.guild.id, code)
    await sessions.wait_until(
        lambda: not sessions.sessions and not sessions.rejoining and out_of_voice(harness)
    )
    text, _, _ = await harness.run("status")  # a round trip: no rejoin was set off
    assert "Not in a voice channel." in text

    assert await bot_channel(fake) is None
    assert len(joins(fake)) == (1 if case == "rate limited" else 2)
    lost = 1 if case == "rate limited" else 2
    assert sample(metrics, "discord_voice_disconnect_total", reason="lost") == lost
    # Still wanted: the next restart or promotion goes back to the channel.
    assert [p.channel_id for p in await harness.store.desired_presence()] == [session.channel_id]


async def test_a_kick_is_honoured_and_not_rejoined(harness: Harness) -> None:
    fake = harness.fake
    sessions, metrics = parts(harness)
    await listening(harness)

    await fake.kick_bot_from_voice(code=4014)
    await sessions.wait_until(lambda: not sessions.sessions and out_of_voice(harness))
    # A command round trip: anything the kick set off on the bot's loop has run by now.
    text, _, _ = await harness.run("status")
    assert "Not in a voice channel." in text

    assert joins(fake) == [fake.voice_channel().id]
    assert await bot_channel(fake) is None
    assert await harness.store.desired_presence() == []
    assert sample(metrics, "discord_voice_disconnect_total", reason="disconnected") == 1
    assert sample(metrics, "discord_voice_disconnect_total", reason="lost") == 0


@pytest.mark.parametrize("withheld", ["server_update", "ready"])
async def test_a_join_discord_never_completes_gives_up_cleanly(
    harness: Harness, withheld: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = harness.fake
    sessions, metrics = parts(harness)
    setattr(fake.controls.voice, f"withhold_{withheld}", 3)
    channel = fake.voice_channel()
    alice = await fake.add_simulated_user("alice", channel=channel)

    with caplog.at_level(logging.INFO):
        text, ephemeral, _ = await harness.run("start", user=alice.user)

    assert (
        text
        == f"I couldn't join <#{channel.id}> after 3 tries (no answer from Discord within 1 s)."
    )
    assert ephemeral
    assert len(fake.recorder.of_kind(f"voice_{withheld}_withheld")) == 3
    assert joins(fake) == [channel.id] * 3
    assert sample(metrics, "discord_voice_connect_total", status="failure") == 3
    assert sample(metrics, "discord_voice_connect_total", status="success") == 0
    assert sample(metrics, "discord_command_total", command="start", status="error") == 1
    assert sessions.sessions == {}
    assert harness.bot.voice_clients == []
    assert await bot_channel(fake) is None
    assert await harness.store.desired_presence() == []
    assert logged_tracebacks(caplog.records) == []


async def test_a_join_that_succeeds_on_a_later_attempt(harness: Harness) -> None:
    fake = harness.fake
    _, metrics = parts(harness)
    fake.controls.voice.withhold_server_update = 2
    session = await listening(harness)

    assert session.voice.is_connected()
    assert len(fake.recorder.of_kind("voice_server_update_withheld")) == 2
    assert sample(metrics, "discord_voice_connect_total", status="failure") == 2
    assert sample(metrics, "discord_voice_connect_total", status="success") == 1
    assert [p.channel_id for p in await harness.store.desired_presence()] == [session.channel_id]


async def test_a_rejoin_that_cannot_connect_keeps_the_channel_wanted(harness: Harness) -> None:
    fake = harness.fake
    sessions, metrics = parts(harness)
    first = await listening(harness)
    fake.controls.voice.withhold_server_update = 3

    await fake.voice.close_voice(fake.guild.id, 4006)
    await fake.recorder.wait_for(
        "voice_server_update_withheld",
        lambda e: len(fake.recorder.of_kind("voice_server_update_withheld")) == 3,
    )
    await sessions.wait_until(
        lambda: not sessions.sessions and not sessions.rejoining and out_of_voice(harness)
    )
    assert sample(metrics, "discord_voice_connect_total", status="failure") == 3
    assert await bot_channel(fake) is None
    # The channel is still wanted, so the next process (or promotion) goes back to it.
    assert [p.channel_id for p in await harness.store.desired_presence()] == [first.channel_id]
    assert await sessions.restore() == [fake.guild.id]
    assert await bot_channel(fake) == first.channel_id


async def wait_for_humans(harness: Harness, channel_id: int, count: int) -> None:
    """Until the bot's cache shows ``count`` people in the channel (a status round trip
    after each voice state the fake sends)."""
    assert harness.bot.user is not None
    for _ in range(50):
        channel = harness.bot.get_channel(channel_id)
        assert isinstance(channel, discord.VoiceChannel)
        if humans_in(channel, harness.bot.user.id) == count:
            return
        await harness.run("status")
    raise AssertionError(f"{count} people never seen in channel {channel_id}")


class Clock:
    """The session manager's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def lost_for_good(harness: Harness, code: int) -> tuple[Clock, VoiceSession]:
    """The session (returned) started, then its connection closed with ``code`` and not
    rejoined at once; the manager's clock is the returned one."""
    sessions, _ = parts(harness)
    clock = Clock()
    sessions._clock = clock
    first = await listening(harness)
    await harness.fake.voice.close_voice(harness.fake.guild.id, code)
    await sessions.wait_until(
        lambda: not sessions.sessions and not sessions.rejoining and out_of_voice(harness)
    )
    return clock, first


async def test_a_wanted_channel_left_after_a_rate_limit_is_joined_again_later(
    harness: Harness,
) -> None:
    """4021: no rejoin at once (Discord asks to back off); the watch joins the channel
    again once the retry is due, and not before."""
    fake = harness.fake
    sessions, metrics = parts(harness)
    clock, first = await lost_for_good(harness, 4021)

    assert await sessions.rejoin_wanted() == []  # seen missing: due in retry_wanted_after
    clock.now += sessions.policy.retry_wanted_after - 1
    assert await sessions.rejoin_wanted() == []
    assert joins(fake) == [first.channel_id]
    clock.now += 1
    assert await sessions.rejoin_wanted() == [fake.guild.id]

    again = sessions.sessions[fake.guild.id]
    assert again.voice.is_connected()
    assert (again.channel_id, again.started_by) == (first.channel_id, first.started_by)
    assert await bot_channel(fake) == first.channel_id
    assert joins(fake) == [first.channel_id] * 2
    assert sample(metrics, "discord_voice_connect_total", status="success") == 2
    assert await sessions.rejoin_wanted() == []  # held: nothing to do


async def test_wanted_channel_retries_wait_for_people_and_back_off_when_joins_fail(
    harness: Harness,
) -> None:
    fake = harness.fake
    sessions, _ = parts(harness)
    sessions.policy = dataclasses.replace(sessions.policy, max_rejoins=0)
    clock, first = await lost_for_good(harness, 4006)  # no rejoins left: the session ends
    assert await sessions.rejoin_wanted() == []
    clock.now += sessions.policy.retry_wanted_after

    alice = next(sim for sim in fake.simulated.values() if sim.user.username == "alice")
    channel = fake.voice_channel()
    await fake.move_simulated_user(alice, None)  # nobody left to listen to: not joined
    await wait_for_humans(harness, channel.id, 0)
    assert await sessions.rejoin_wanted() == []
    assert joins(fake) == [first.channel_id]

    await fake.move_simulated_user(alice, channel)
    await wait_for_humans(harness, channel.id, 1)
    fake.controls.voice.withhold_server_update = 3  # the join's 3 attempts all fail
    with capture_logs() as entries:
        assert await sessions.rejoin_wanted() == []
    delay = 2 * sessions.policy.retry_wanted_after
    retries = [e for e in entries if e["event"].endswith("trying again later")]
    assert [e["context"]["retry_in_seconds"] for e in retries] == [delay]
    assert joins(fake) == [first.channel_id] * 4
    clock.now += delay - 1
    assert await sessions.rejoin_wanted() == []  # backing off: not yet
    clock.now += 1
    assert await sessions.rejoin_wanted() == [fake.guild.id]
    assert await bot_channel(fake) == first.channel_id
    # Still wanted throughout; /voice stop would have forgotten it.
    assert [p.channel_id for p in await harness.store.desired_presence()] == [first.channel_id]


async def test_a_wanted_channel_someone_stops_while_the_retry_runs_is_not_joined(
    harness: Harness,
) -> None:
    """`/voice stop` lands after the retry read the wanted channels and before it joins:
    the stop wins."""
    fake = harness.fake
    sessions, _ = parts(harness)
    clock, first = await lost_for_good(harness, 4021)
    assert await sessions.rejoin_wanted() == []
    clock.now += sessions.policy.retry_wanted_after
    store = sessions._store

    class StoppedDuringTheRead:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        async def desired_presence(self) -> list[VoicePresence]:
            wanted = await store.desired_presence()
            assert await sessions.stop(fake.guild.id, reason="stop") is False  # /voice stop
            return wanted

    sessions._store = StoppedDuringTheRead()  # type: ignore[assignment]
    try:
        assert await sessions.rejoin_wanted() == []
    finally:
        sessions._store = store
    assert joins(fake) == [first.channel_id]
    assert await store.desired_presence() == []
