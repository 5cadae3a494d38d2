"""Numbered SQL migrations applied in order, each once, each in its own transaction."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiosqlite
import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "state.sqlite3"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The database cannot be migrated; the message says which file or why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in the package, ordered by version."""
    found: list[Migration] = []
    for entry in resources.files("openclaw_voice.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 0001 upwards without gaps: {versions}")
    return found


def database_path(state_dir: Path) -> Path:
    return state_dir / DATABASE_NAME


def prepare_database_file(state_dir: Path) -> Path:
    """Create the state directory (0750) and the database file (0600: it holds user ids)."""
    path = database_path(state_dir)
    try:
        state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
    except OSError as error:
        raise MigrationError(f"cannot create {path}: {error.strerror}") from None
    return path


async def current_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def apply_migrations(
    db: aiosqlite.Connection, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply the pending migrations on an open connection; return the names applied."""
    pending = bundled_migrations() if migrations is None else migrations
    version = await current_version(db)
    latest = pending[-1].version if pending else 0
    if version > latest:
        raise MigrationError(
            f"the state database is at schema version {version}, newer than this "
            f"release's {latest}; run the newer release or restore a backup"
        )
    applied: list[str] = []
    for migration in pending:
        if migration.version <= version:
            continue
        # executescript commits whatever is open first, so the transaction is part of
        # the script: a failing statement leaves it open for the rollback.
        script = f"BEGIN;\n{migration.sql}\nPRAGMA user_version = {migration.version:d};\nCOMMIT;"
        try:
            await db.executescript(script)
        except aiosqlite.Error as error:
            await db.rollback()
            raise MigrationError(f"{migration.name} failed: {error}") from None
        applied.append(migration.name)
        log.info("migration applied", context={"migration": migration.name})
    return applied


async def migrate(state_dir: Path, migrations: list[Migration] | None = None) -> list[str]:
    """Bring the database in ``state_dir`` up to date; return the names applied."""
    path = prepare_database_file(state_dir)
    try:
        async with aiosqlite.connect(path) as db:
            return await apply_migrations(db, migrations)
    except aiosqlite.Error as error:
        raise MigrationError(f"{path}: {error}") from None
