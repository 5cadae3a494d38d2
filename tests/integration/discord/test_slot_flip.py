"""Blue-green in the bot: two slots logged in as the same bot, one acting, flipped live."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.discord.test_commands import (
    bot_channel,
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
