from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openclaw_voice.app import Application
from openclaw_voice.discord.client import VoiceBot
from tests.e2e.support import bot_running
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner


@pytest.fixture
async def running_bot(
    fake_discord: FakeDiscord,
    discord_clients: ClientRunner,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[VoiceBot, Application]]:
    """The bot on the offline providers; ``indirect`` parameters add settings."""
    async with bot_running(
        fake_discord, discord_clients, tmp_path, getattr(request, "param", {})
    ) as running:
        yield running
