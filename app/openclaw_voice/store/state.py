"""Guild state in SQLite: settings, desired voice presence, opt-outs and daily usage.

One file in the state directory, shared by both deployment slots (WAL mode, a busy
timeout so the two can take turns). Opening migrates the schema and refuses one newer
than this release knows. A file that is not a database is never overwritten: a copy is
kept beside it and the error says where, so no data is silently lost.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiosqlite
import structlog

from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.store.migrate import (
    MigrationError,
    apply_migrations,
    prepare_database_file,
)

log = structlog.get_logger(__name__)

AddressingMode = Literal["auto", "wake", "open"]
UsageKind = Literal["stt_seconds", "tts_characters", "llm_tokens"]
BUSY_TIMEOUT_MS = 5000


class StoreError(Exception):
    """The state database cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class GuildSettings:
    guild_id: int
    addressing_mode: AddressingMode = "auto"
    wake_name: str | None = None
    end_of_speech_ms: int = 500
    transcript_channel_id: int | None = None
    allowed_role_ids: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class VoicePresence:
    """Where the bot should be in a guild, and who asked for it."""

    guild_id: int
    channel_id: int
    started_by: int | None
    text_channel_id: int | None
    since: str


class StateStore:
    """Async access to the state database; build with :meth:`open`, end with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection, path: Path, metrics: Metrics | None) -> None:
        self._db = db
        self.path = path
        self._metrics = metrics

    @classmethod
    async def open(cls, state_dir: Path, *, metrics: Metrics | None = None) -> StateStore:
        path = prepare_database_file(state_dir)
        try:
            db = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open {path}: {error}") from None
        try:
            await _check_readable(db, path)
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            applied = await apply_migrations(db)
        except (MigrationError, StoreError) as error:
            await db.close()
            raise StoreError(str(error)) from None
        except sqlite3.Error as error:
            await db.close()
            raise StoreError(f"{path}: {error}") from None
        if applied:
            log.info("state database migrated", context={"applied": applied})
        return cls(db, path, metrics)

    async def close(self) -> None:
        await self._db.close()

    @asynccontextmanager
    async def _operation(self, name: str) -> AsyncIterator[aiosqlite.Connection]:
        """Count and explain database errors; writes commit at the end."""
        try:
            yield self._db
            await self._db.commit()
        except sqlite3.Error as error:
            if self._metrics is not None:
                self._metrics.store_errors_total.labels(operation=name).inc()
            log.error("state database error", error=str(error), context={"operation": name})
            raise StoreError(f"state database error during {name}: {error}") from None

    # --- guild settings ------------------------------------------------------------------

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with (
            self._operation("read_settings") as db,
            db.execute(
                "SELECT addressing_mode, wake_name, end_of_speech_ms, transcript_channel_id,"
                " allowed_role_ids FROM guild_settings WHERE guild_id = ?",
                (guild_id,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None:
            return GuildSettings(guild_id)
        return GuildSettings(
            guild_id=guild_id,
            addressing_mode=row[0],
            wake_name=row[1],
            end_of_speech_ms=int(row[2]),
            transcript_channel_id=row[3],
            allowed_role_ids=tuple(int(role) for role in json.loads(row[4])),
        )

    async def save_guild_settings(self, settings: GuildSettings) -> None:
        async with self._operation("save_settings") as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id, addressing_mode, wake_name,"
                " end_of_speech_ms, transcript_channel_id, allowed_role_ids, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                " ON CONFLICT (guild_id) DO UPDATE SET addressing_mode = excluded.addressing_mode,"
                " wake_name = excluded.wake_name, end_of_speech_ms = excluded.end_of_speech_ms,"
                " transcript_channel_id = excluded.transcript_channel_id,"
                " allowed_role_ids = excluded.allowed_role_ids, updated_at = excluded.updated_at",
                (
                    settings.guild_id,
                    settings.addressing_mode,
                    settings.wake_name,
                    settings.end_of_speech_ms,
                    settings.transcript_channel_id,
                    json.dumps(list(settings.allowed_role_ids)),
                ),
            )

    # --- voice presence --------------------------------------------------------------------

    async def set_presence(
        self,
        guild_id: int,
        channel_id: int,
        *,
        started_by: int | None,
        text_channel_id: int | None,
    ) -> None:
        async with self._operation("set_presence") as db:
            await db.execute(
                "INSERT INTO guild_voice_state (guild_id, channel_id, desired, started_by,"
                " text_channel_id, updated_at)"
                " VALUES (?, ?, 1, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                " ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id,"
                " desired = 1, started_by = excluded.started_by,"
                " text_channel_id = excluded.text_channel_id, updated_at = excluded.updated_at",
                (guild_id, channel_id, started_by, text_channel_id),
            )

    async def clear_presence(self, guild_id: int) -> None:
        async with self._operation("clear_presence") as db:
            await db.execute(
                "UPDATE guild_voice_state SET desired = 0,"
                " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE guild_id = ?",
                (guild_id,),
            )

    async def desired_presence(self) -> list[VoicePresence]:
        """Every guild whose voice channel the bot should be in, e.g. after a restart."""
        async with (
            self._operation("read_presence") as db,
            db.execute(
                "SELECT guild_id, channel_id, started_by, text_channel_id, updated_at"
                " FROM guild_voice_state WHERE desired = 1 AND channel_id IS NOT NULL"
                " ORDER BY guild_id"
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [VoicePresence(int(r[0]), int(r[1]), r[2], r[3], str(r[4])) for r in rows]

    # --- opt-outs ----------------------------------------------------------------------------

    async def set_opted_out(self, guild_id: int, user_id: int, opted_out: bool) -> None:
        async with self._operation("set_optout") as db:
            if opted_out:
                await db.execute(
                    "INSERT OR IGNORE INTO user_optouts (guild_id, user_id) VALUES (?, ?)",
                    (guild_id, user_id),
                )
            else:
                await db.execute(
                    "DELETE FROM user_optouts WHERE guild_id = ? AND user_id = ?",
                    (guild_id, user_id),
                )

    async def opted_out_users(self, guild_id: int) -> set[int]:
        async with (
            self._operation("read_optouts") as db,
            db.execute(
                "SELECT user_id FROM user_optouts WHERE guild_id = ?", (guild_id,)
            ) as cursor,
        ):
            return {int(row[0]) for row in await cursor.fetchall()}

    # --- interaction claims -------------------------------------------------------------

    async def claim_interaction(self, interaction_id: int, slot: str) -> bool:
        """True for the first slot to claim an interaction; claims older than 1 h expire."""
        now = time.time()
        async with self._operation("claim_interaction") as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO interaction_claims (interaction_id, slot, claimed_at)"
                " VALUES (?, ?, ?)",
                (interaction_id, slot, now),
            )
            claimed = cursor.rowcount == 1
            await db.execute("DELETE FROM interaction_claims WHERE claimed_at < ?", (now - 3600,))
        return claimed

    # --- usage --------------------------------------------------------------------------

    async def add_usage(
        self, guild_id: int, kind: UsageKind, amount: float, *, day: dt.date | None = None
    ) -> None:
        date = (day or dt.datetime.now(dt.UTC).date()).isoformat()
        async with self._operation("add_usage") as db:
            await db.execute(
                "INSERT INTO daily_usage (guild_id, day, kind, amount) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id, day, kind)"
                " DO UPDATE SET amount = amount + excluded.amount",
                (guild_id, date, kind, amount),
            )

    async def usage(self, guild_id: int, *, day: dt.date | None = None) -> dict[str, float]:
        date = (day or dt.datetime.now(dt.UTC).date()).isoformat()
        async with (
            self._operation("read_usage") as db,
            db.execute(
                "SELECT kind, amount FROM daily_usage WHERE guild_id = ? AND day = ?",
                (guild_id, date),
            ) as cursor,
        ):
            return {str(row[0]): float(row[1]) for row in await cursor.fetchall()}


async def _check_readable(db: aiosqlite.Connection, path: Path) -> None:
    """Fail clearly on a file that is not a healthy SQLite database, keeping a copy."""
    try:
        async with db.execute("PRAGMA quick_check") as cursor:
            row = await cursor.fetchone()
        healthy = row is not None and row[0] == "ok"
        problem = "" if healthy else str(row[0] if row else "no answer")
    except sqlite3.DatabaseError as error:
        healthy, problem = False, str(error)
    if healthy:
        return
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(f"{path.name}.corrupt-{stamp}")
    shutil.copy2(path, backup)
    raise StoreError(
        f"{path} is damaged ({problem}); a copy was kept at {backup}. Restore a backup, or "
        f"move the file away to start with an empty state."
    )
