"""Migrations: ordered, once each, atomic, and refusing a newer schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from openclaw_voice.store.migrate import (
    Migration,
    MigrationError,
    bundled_migrations,
    database_path,
    migrate,
)


def versions(state_dir: Path) -> int:
    with sqlite3.connect(database_path(state_dir)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_bundled_migrations_are_numbered_from_one() -> None:
    found = bundled_migrations()
    assert [migration.version for migration in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_initial.sql"


async def test_applies_pending_in_order_once(tmp_path: Path) -> None:
    steps = [
        Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"),
        Migration(2, "0002_b.sql", "CREATE TABLE b (y INTEGER);"),
    ]
    assert await migrate(tmp_path, steps[:1]) == ["0001_a.sql"]
    assert await migrate(tmp_path, steps) == ["0002_b.sql"]
    assert await migrate(tmp_path, steps) == []
    assert versions(tmp_path) == 2


async def test_failed_migration_rolls_back_entirely(tmp_path: Path) -> None:
    steps = [
        Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"),
        Migration(
            2, "0002_bad.sql", "CREATE TABLE c (z INTEGER);\nINSERT INTO nowhere VALUES (1);"
        ),
    ]
    with pytest.raises(MigrationError, match=r"0002_bad\.sql failed: no such table: nowhere"):
        await migrate(tmp_path, steps)
    assert versions(tmp_path) == 1
    with sqlite3.connect(database_path(tmp_path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"a"}


async def test_refuses_database_from_a_newer_release(tmp_path: Path) -> None:
    await migrate(
        tmp_path, [Migration(1, "0001_a.sql", "SELECT 1;"), Migration(2, "0002.sql", "SELECT 1;")]
    )
    with pytest.raises(MigrationError, match="schema version 2, newer than this release's 1"):
        await migrate(tmp_path, [Migration(1, "0001_a.sql", "SELECT 1;")])


async def test_corrupt_database_is_reported(tmp_path: Path) -> None:
    database_path(tmp_path).write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(MigrationError, match=r"state\.sqlite3"):
        await migrate(tmp_path)
