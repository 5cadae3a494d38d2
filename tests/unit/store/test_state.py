"""The state store: settings, presence, opt-outs, usage; corrupt and newer databases."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.store import state
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


async def test_usage_older_than_the_kept_days_is_removed_once_a_new_day_is_written(
    tmp_path: Path,
) -> None:
    today = dt.date(2026, 11, 27)
    too_old = today - dt.timedelta(days=state.USAGE_KEPT_DAYS + 1)
    oldest_kept = today - dt.timedelta(days=state.USAGE_KEPT_DAYS)
    earlier = await StateStore.open(tmp_path)
    await earlier.add_usage(GUILD, "llm_tokens", 1, day=too_old)
    await earlier.add_usage(GUILD, "llm_tokens", 2, day=oldest_kept)
    await earlier.close()
    assert len(on_disk(tmp_path)[1]) == 2

    later = await StateStore.open(tmp_path)
    await later.add_usage(GUILD, "llm_tokens", 3, day=today)
    await later.close()

    assert sorted(amount for _, _, amount in on_disk(tmp_path)[1]) == [2, 3]


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


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process's write transaction on the state database, held inside the block."""
    with contextlib.closing(sqlite3.connect(path / DATABASE_NAME, isolation_level=None)) as db:
        db.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            db.rollback()


def errors(metrics: Metrics, operation: str) -> float:
    value = metrics.registry.get_sample_value("store_errors_total", {"operation": operation})
    return value or 0.0


@contextlib.contextmanager
def refused(operation: str) -> Iterator[asyncio.Event]:
    """Set once the store logs that the database refused ``operation``."""
    seen = asyncio.Event()

    def watch(logger: object, method: str, event: structlog.typing.EventDict) -> Any:
        context = event.get("context") or {}
        if (event["event"], context.get("operation")) == ("state database error", operation):
            seen.set()
        return event

    with structlog.testing.capture_logs(processors=[watch]):
        yield seen


async def test_reads_do_not_wait_behind_a_write_waiting_for_a_lock(
    store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.save_guild_settings(GuildSettings(GUILD, wake_name="Claw"))
    writing = asyncio.Event()
    execute = store._db.execute

    def noting_execute(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        return execute(*args, **kwargs)

    monkeypatch.setattr(store._db, "execute", noting_execute)
    with locked(tmp_path):
        write = asyncio.create_task(store.save_guild_settings(GuildSettings(GUILD + 1)))
        # Set when the write task calls execute; it then queues the statement on the
        # store's connection before this task runs again.
        await asyncio.wait_for(writing.wait(), 1.0)
        async with asyncio.timeout(1.0):  # the busy timeout is 5 s
            assert (await store.guild_settings(GUILD)).wake_name == "Claw"
            assert await store.usage(GUILD) == {}
            assert await store.desired_presence() == []
        assert not write.done()
    await write  # the lock was released within its busy timeout: written


async def test_presence_and_usage_refused_by_a_locked_database_are_written_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(state, "RETRY_FIRST_SECONDS", 0.01)
    metrics = Metrics()
    store = await StateStore.open(tmp_path, metrics=metrics)
    day = dt.date(2026, 11, 27)
    try:
        with locked(tmp_path), refused("set_presence") as refusal:
            async with asyncio.timeout(1.0):  # nobody waits for these writes
                await store.set_presence(GUILD, 555, started_by=9, text_channel_id=77)
                await store.set_presence(GUILD + 1, 556, started_by=None, text_channel_id=None)
                await store.clear_presence(GUILD + 1)  # the newest change wins
                await store.add_usage(GUILD, "stt_seconds", 2.5, day=day)
                await store.add_usage(GUILD, "stt_seconds", 1.5, day=day)
            # Read back at once, though not written yet.
            (presence,) = await store.desired_presence()
            assert (presence.guild_id, presence.channel_id, presence.started_by) == (GUILD, 555, 9)
            assert await store.usage(GUILD, day=day) == {"stt_seconds": 4.0}

            async with asyncio.timeout(5.0):
                await refusal.wait()
            assert errors(metrics, "set_presence") >= 1
            assert on_disk(tmp_path) == ([], [])
        async with asyncio.timeout(5.0):  # the writer ends when everything is written
            await asyncio.shield(store._writer)  # type: ignore[arg-type]
        assert on_disk(tmp_path) == ([(GUILD, 555, 1)], [(GUILD, "stt_seconds", 4.0)])
        assert await store.usage(GUILD, day=day) == {"stt_seconds": 4.0}  # counted once
        assert [p.guild_id for p in await store.desired_presence()] == [GUILD]
    finally:
        await store.close()


def on_disk(path: Path) -> tuple[list[tuple[int, int, int]], list[tuple[int, str, float]]]:
    """The presence and usage rows another process sees."""
    with contextlib.closing(sqlite3.connect(path / DATABASE_NAME)) as db:
        presence = db.execute("SELECT guild_id, channel_id, desired FROM guild_voice_state")
        usage = db.execute("SELECT guild_id, kind, amount FROM daily_usage")
        return list(presence), list(usage)


async def test_closing_tries_once_more_and_says_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "BUSY_TIMEOUT_MS", 50)
    store = await StateStore.open(tmp_path)
    with locked(tmp_path), structlog.testing.capture_logs() as logs:
        await store.add_usage(GUILD, "llm_tokens", 7, day=dt.date(2026, 11, 27))
        async with asyncio.timeout(2.0):  # not the retry backoff: one last try
            await store.close()
    [lost] = [entry for entry in logs if entry["event"].startswith("state changes lost")]
    assert lost["context"]["usage"] == {f"{GUILD}/2026-11-27/llm_tokens": 7}
    assert on_disk(tmp_path) == ([], [])


async def test_a_failed_write_is_rolled_back_not_committed_by_the_next(
    store: StateStore,
) -> None:
    async def half_done() -> None:
        async with store._operation("test") as db:
            await db.execute("INSERT INTO user_optouts (guild_id, user_id) VALUES (?, 1)", (GUILD,))
            await db.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreError):
        await half_done()
    await store.set_opted_out(GUILD, 2, True)  # commits whatever its transaction holds
    assert await store.opted_out_users(GUILD) == {2}


async def test_a_retried_presence_change_does_not_replace_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(state, "RETRY_FIRST_SECONDS", 0.01)
    store = await StateStore.open(tmp_path)
    try:
        path = tmp_path / DATABASE_NAME
        with (
            contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other,
            refused("set_presence") as refusal,
        ):
            other.execute("BEGIN EXCLUSIVE")
            await store.set_presence(GUILD, 555, started_by=None, text_channel_id=None)
            async with asyncio.timeout(5.0):
                await refusal.wait()
            # The other slot, holding the lock, records a later decision for the guild.
            other.execute(
                "INSERT INTO guild_voice_state (guild_id, channel_id, desired) VALUES (?, 777, 1)",
                (GUILD,),
            )
            other.execute("COMMIT")
        async with asyncio.timeout(5.0):
            await asyncio.shield(store._writer)  # type: ignore[arg-type]
        assert on_disk(tmp_path) == ([(GUILD, 777, 1)], [])
        assert [p.channel_id for p in await store.desired_presence()] == [777]
    finally:
        await store.close()
