"""The state store: settings, presence, opt-outs, usage; corrupt and newer databases."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.store.migrate import DATABASE_NAME, Migration, migrate
from openclaw_voice.store.state import GuildSettings, StateStore, StoreError

GUILD = 123456789012345678


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    opened = await StateStore.open(tmp_path, metrics=Metrics())
    yield opened
    await opened.close()


async def test_guild_settings_default_and_round_trip(store: StateStore) -> None:
    assert await store.guild_settings(GUILD) == GuildSettings(GUILD)
    wanted = GuildSettings(
        GUILD,
        addressing_mode="wake",
        wake_name="Claw",
        end_of_speech_ms=700,
        transcript_channel_id=42,
        allowed_role_ids=(7, 8),
    )
    await store.save_guild_settings(wanted)
    await store.save_guild_settings(wanted)
    assert await store.guild_settings(GUILD) == wanted


async def test_invalid_settings_are_refused_by_the_schema(store: StateStore) -> None:
    with pytest.raises(StoreError, match="save_settings"):
        await store.save_guild_settings(GuildSettings(GUILD, end_of_speech_ms=50))


async def test_presence_survives_reopening(tmp_path: Path) -> None:
    first = await StateStore.open(tmp_path)
    await first.set_presence(GUILD, 555, started_by=9, text_channel_id=77)
    await first.set_presence(GUILD + 1, 556, started_by=None, text_channel_id=None)
    await first.clear_presence(GUILD + 1)
    await first.close()
    second = await StateStore.open(tmp_path)
    try:
        (presence,) = await second.desired_presence()
    finally:
        await second.close()
    assert (presence.guild_id, presence.channel_id, presence.started_by) == (GUILD, 555, 9)
    assert presence.text_channel_id == 77


async def test_optouts(store: StateStore) -> None:
    await store.set_opted_out(GUILD, 1, True)
    await store.set_opted_out(GUILD, 1, True)
    await store.set_opted_out(GUILD, 2, True)
    await store.set_opted_out(GUILD, 2, False)
    assert await store.opted_out_users(GUILD) == {1}
    assert await store.opted_out_users(GUILD + 1) == set()


async def test_usage_adds_up_per_day(store: StateStore) -> None:
    today = dt.date(2026, 11, 27)
    await store.add_usage(GUILD, "stt_seconds", 2.5, day=today)
    await store.add_usage(GUILD, "stt_seconds", 1.5, day=today)
    await store.add_usage(GUILD, "llm_tokens", 100, day=today)
    await store.add_usage(GUILD, "llm_tokens", 5, day=today + dt.timedelta(days=1))
    assert await store.usage(GUILD, day=today) == {"stt_seconds": 4.0, "llm_tokens": 100.0}


async def test_wal_mode(store: StateStore, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_migrates_from_the_previous_schema_keeping_rows(tmp_path: Path) -> None:
    first = Path(__file__).parents[3] / "app/openclaw_voice/store/migrations/0001_initial.sql"
    await migrate(tmp_path, [Migration(1, "0001_initial.sql", first.read_text())])
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        db.execute("INSERT INTO guild_voice_state (guild_id, channel_id, desired) VALUES (1, 2, 1)")
    store = await StateStore.open(tmp_path)
    try:
        (presence,) = await store.desired_presence()
    finally:
        await store.close()
    assert (presence.guild_id, presence.channel_id, presence.started_by) == (1, 2, None)


async def test_corrupt_file_is_kept_and_explained(tmp_path: Path) -> None:
    garbage = b"not a database at all " * 200
    (tmp_path / DATABASE_NAME).write_bytes(garbage)
    with pytest.raises(StoreError, match="is damaged") as caught:
        await StateStore.open(tmp_path)
    backups = list(tmp_path.glob(f"{DATABASE_NAME}.corrupt-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == garbage
    assert (tmp_path / DATABASE_NAME).read_bytes() == garbage  # never overwritten
    assert str(backups[0]) in str(caught.value)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    await (await StateStore.open(tmp_path)).close()
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer than this release"):
        await StateStore.open(tmp_path)
