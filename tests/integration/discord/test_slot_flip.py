"""Blue-green in the bot: two slots logged in as the same bot, one acting, flipped live;
the start-up promotion when Discord is slow or refuses the command sync."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from openclaw_voice.app import Application
from openclaw_voice.store.state import StateStore
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.controls import RestFault
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.discord.test_commands import (
    Harness,
    bot_channel,
    bot_settings,
    start_harness,
    stop_harness,
)


async def test_flip_moves_the_voice_channel_and_answers_each_interaction_once(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    blue = await start_harness(fake_discord, discord_clients, tmp_path, SLOT_NAME="blue")
    green = await start_harness(
        fake_discord, discord_clients, tmp_path, active=False, SLOT_NAME="green"
    )
    try:
        channel = fake_discord.voice_channel()
        alice = await fake_discord.add_simulated_user("alice", channel=channel)
        text, _, _ = await blue.run("start", user=alice.user)
        assert text.startswith("Listening in")
        assert blue.app.status.not_ready_reasons() == []
        assert green.app.status.not_ready_reasons() == ["standby"]

        # Commands keep coming while the roles flip.
        during = [asyncio.create_task(blue.run("status", user=alice.user)) for _ in range(5)]
        await blue.app.slot.set_role("standby")
        await green.app.slot.set_role("active")
        during += [asyncio.create_task(blue.run("status", user=alice.user)) for _ in range(3)]
        answers = await asyncio.gather(*during)

        for _text, ephemeral, record in answers:
            assert ephemeral
            assert len(record.callbacks) == 1, record.callbacks  # answered exactly once
        assert "fake_error" not in {event.kind for event in fake_discord.recorder.events}
        green_sessions = green.bot.sessions
        assert green_sessions is not None
        await green_sessions.wait_until(lambda: fake_discord.guild.id in green_sessions.sessions)
        assert await bot_channel(fake_discord) == channel.id
        assert blue.bot.sessions is not None
        assert blue.bot.sessions.sessions == {}
        assert green.app.status.not_ready_reasons() == []
        assert blue.app.status.not_ready_reasons() == ["standby"]
        assert (blue.bot.sessions.watching, green_sessions.watching) == (False, True)

        # And back: blue, promoted a second time, watches its sessions again.
        await green.app.slot.set_role("standby")
        await blue.app.slot.set_role("active")
        assert (blue.bot.sessions.watching, green_sessions.watching) == (True, False)
    finally:
        await stop_harness(green, discord_clients)
        await stop_harness(blue, discord_clients)


async def test_a_slot_started_active_while_discord_holds_ready_acts_once_let_in(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    """SLOT_ROLE=active, and READY comes later than a promotion waits for it (a host
    started during a Discord incident): the slot acts once let in, not stays standby."""
    held = fake_discord.gateway.hold_ready = asyncio.Event()
    app = Application(bot_settings(fake_discord, tmp_path, SLOT_ROLE="active"))
    app.promote_connect_timeout = 0.0  # a promotion that waited for READY gives up at once
    store = await StateStore.open(tmp_path)
    harness = Harness(fake_discord, app.build_bot(store), store, app)
    await discord_clients.start(harness.bot, wait_ready=False)
    try:
        taking = asyncio.create_task(app._take_initial_role())
        await fake_discord.recorder.wait_for("gateway_ready_held")
        assert app.status.not_ready_reasons() == ["standby", "discord not connected"]
        held.set()
        await asyncio.wait_for(taking, 15)
        assert app.status.not_ready_reasons() == []
        assert app.slot.role == "active"
    finally:
        await stop_harness(harness, discord_clients)


async def test_a_promotion_acts_even_if_discord_refuses_the_command_sync(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    # A first start registers the commands; Discord refuses the next start's sync.
    await stop_harness(
        await start_harness(fake_discord, discord_clients, tmp_path), discord_clients
    )
    fake_discord.controls.rest.faults.append(
        RestFault(status=400, path_contains="/commands", method="PUT")
    )
    with capture_logs() as entries:
        harness = await start_harness(fake_discord, discord_clients, tmp_path)
    try:
        assert harness.app.slot.role == "active"
        assert harness.app.status.not_ready_reasons() == []
        refused = [e for e in entries if e["event"].startswith("could not register")]
        assert len(refused) == 1
        assert "HTTPException" in refused[0]["error"]
        channel = fake_discord.voice_channel()
        alice = await fake_discord.add_simulated_user("alice", channel=channel)
        text, _, _ = await harness.run("start", user=alice.user)
        assert text.startswith("Listening in")
    finally:
        await stop_harness(harness, discord_clients)
