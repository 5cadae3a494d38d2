"""Guild state in SQLite: settings, desired voice presence, opt-outs and daily usage.

One file in the state directory, shared by both deployment slots (WAL mode, a busy
timeout so the two can take turns). Opening migrates the schema and refuses one newer
than this release knows. A file that is not a database is never overwritten: a copy is
kept beside it and the error says where, so no data is silently lost.

The database may refuse writes for a while (another process holding its lock, a full or
read-only disk). Reads have a connection of their own, so they never wait behind a write
that waits for a lock. A guild's desired presence and its usage are written in the
background, nobody waits for them: they are kept until written, retried with backoff
while the database refuses them, and reads see them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
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
# Background writes refused by the database are tried again after these delays (doubling).
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# Daily usage rows older than this are removed (the budgets read only today's).
USAGE_KEPT_DAYS = 90
# How long a read of presence or usage waits for a background write in flight.
READ_WAIT_SECONDS = 0.1
UsageKey = tuple[int, str, str]  # guild, UTC day (ISO), kind


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


@dataclass(frozen=True)
class _PresenceChange:
    """A guild's desired presence not yet written (``channel_id`` None: cleared)."""

    channel_id: int | None
    started_by: int | None = None
    text_channel_id: int | None = None
    since: str = ""


class StateStore:
    """Async access to the state database; build with :meth:`open`, end with :meth:`close`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: Path,
        metrics: Metrics | None,
        reader: aiosqlite.Connection | None = None,
    ) -> None:
        self._db = db  # writes
        self._reader = reader or db  # reads
        self.path = path
        self._metrics = metrics
        # Background writes: the newest presence change per guild, usage per (guild, day,
        # kind); the usage amounts being written right now.
        self._presence: dict[int, _PresenceChange] = {}
        self._refused: set[_PresenceChange] = set()  # pending changes the database refused
        self._usage: dict[UsageKey, float] = {}
        self._usage_writing: dict[UsageKey, float] = {}
        self._writer: asyncio.Task[None] | None = None
        self._usage_pruned_before = ""  # daily usage rows of earlier days are gone
        self._closing = asyncio.Event()
        self._gate = asyncio.Lock()  # held to pick a change to write, or to read and merge
        self._idle = asyncio.Event()  # no background write in flight
        self._idle.set()

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
        try:
            reader = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as error:
            await db.close()
            raise StoreError(f"cannot open {path}: {error}") from None
        try:
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await reader.execute("PRAGMA query_only = 1")
        except sqlite3.Error as error:
            await reader.close()
            await db.close()
            raise StoreError(f"{path}: {error}") from None
        return cls(db, path, metrics, reader)

    async def close(self) -> None:
        """Write what is pending (one last try), then close."""
        self._closing.set()
        if self._writer is not None:
            await self._writer
        elif self._pending():
            await self._write_pending()
        if self._pending():
            log.error(
                "state changes lost: the state database refused them until the end",
                context={
                    "presence_guilds": sorted(str(guild) for guild in self._presence),
                    "usage": {
                        f"{guild}/{day}/{kind}": amount
                        for (guild, day, kind), amount in sorted(self._usage.items())
                    },
                },
            )
        if self._reader is not self._db:
            await self._reader.close()
        await self._db.close()

    @asynccontextmanager
    async def _operation(
        self, name: str, *, read: bool = False
    ) -> AsyncIterator[aiosqlite.Connection]:
        """Count and explain database errors; writes commit at the end, or roll back (a
        failed write leaves no open transaction for the next operation to commit)."""
        db = self._reader if read else self._db
        try:
            yield db
            await db.commit()
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                await db.rollback()
            if self._metrics is not None:
                self._metrics.store_errors_total.labels(operation=name).inc()
            log.error("state database error", error=str(error), context={"operation": name})
            raise StoreError(f"state database error during {name}: {error}") from None

    # --- background writes ----------------------------------------------------------------

    def _pending(self) -> bool:
        return bool(self._presence or self._usage)

    def _write_soon(self) -> None:
        if self._closing.is_set():
            return  # closing: written by close() if it still can
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="state-writer")

    async def _write_pending(self) -> None:
        """Write everything pending; while the database refuses, try again with backoff
        (once more only when closing)."""
        delay, failures = RETRY_FIRST_SECONDS, 0
        while self._pending():
            try:
                await self._write_all()
            except StoreError:  # counted and logged by _operation
                failures += 1
                if self._closing.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if failures:
                log.warning(
                    "state database takes writes again; pending changes written",
                    context={"failed_attempts": failures},
                )
                delay, failures = RETRY_FIRST_SECONDS, 0

    async def _write_all(self) -> None:
        """Write the pending changes one by one, presence first; stop at the first the
        database refuses. A presence change stays pending until written (unless a newer
        one replaced it meanwhile); a usage amount is set aside while it is written."""
        while self._pending():
            async with self._gate:  # picked while no read is merging what is pending
                self._idle.clear()
                presence = next(iter(self._presence.items()), None)
                usage = self._usage.popitem() if presence is None else None
                if usage is not None:
                    self._usage_writing[usage[0]] = usage[1]
            try:
                if presence is not None:
                    guild_id, change = presence
                    retry = change in self._refused
                    try:
                        await self._write_presence(guild_id, change, retry=retry)
                    except StoreError:
                        self._refused.add(change)
                        raise
                    self._refused.discard(change)
                    if self._presence.get(guild_id) is change:
                        del self._presence[guild_id]
                elif usage is not None:
                    key, amount = usage
                    try:
                        await self._write_usage(key, amount)
                    except BaseException:
                        self._usage[key] = self._usage.get(key, 0.0) + amount
                        raise
                    finally:
                        del self._usage_writing[key]
            finally:
                self._idle.set()

    @asynccontextmanager
    async def _settled(self) -> AsyncIterator[None]:
        """For a read that merges what is pending: no background write starts meanwhile,
        and the one in flight had ``READ_WAIT_SECONDS`` to finish (else, as when the
        database is locked, its change is merged: a usage amount could count twice)."""
        async with self._gate:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), READ_WAIT_SECONDS)
            yield

    # --- guild settings ------------------------------------------------------------------

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with (
            self._operation("read_settings", read=True) as db,
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
        """Record where the bot should be in a guild (written in the background)."""
        self._change_presence(
            guild_id, _PresenceChange(channel_id, started_by, text_channel_id, _now())
        )

    async def clear_presence(self, guild_id: int) -> None:
        """Forget it (written in the background)."""
        self._change_presence(guild_id, _PresenceChange(None, since=_now()))

    def _change_presence(self, guild_id: int, change: _PresenceChange) -> None:
        replaced = self._presence.get(guild_id)
        if replaced is not None:
            self._refused.discard(replaced)
        self._presence[guild_id] = change
        self._write_soon()

    async def _write_presence(self, guild_id: int, change: _PresenceChange, *, retry: bool) -> None:
        """Write ``change``, recorded as made at ``change.since``. A retried change does not
        replace a row written after it was made (by the other slot, say, while this one's
        writes were refused): the database keeps the newer."""
        anyway = not retry  # a first attempt writes whatever the row holds
        if change.channel_id is None:
            async with self._operation("clear_presence") as db:
                cursor = await db.execute(
                    "UPDATE guild_voice_state SET desired = 0, updated_at = ?"
                    " WHERE guild_id = ? AND (? OR updated_at <= ?)",
                    (change.since, guild_id, anyway, change.since),
                )
        else:
            async with self._operation("set_presence") as db:
                cursor = await db.execute(
                    "INSERT INTO guild_voice_state (guild_id, channel_id, desired, started_by,"
                    " text_channel_id, updated_at) VALUES (?, ?, 1, ?, ?, ?)"
                    " ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id,"
                    " desired = 1, started_by = excluded.started_by,"
                    " text_channel_id = excluded.text_channel_id, updated_at = excluded.updated_at"
                    " WHERE ? OR guild_voice_state.updated_at <= excluded.updated_at",
                    (
                        guild_id,
                        change.channel_id,
                        change.started_by,
                        change.text_channel_id,
                        change.since,
                        anyway,
                    ),
                )
        if retry and cursor.rowcount == 0:
            log.info(
                "presence change not written: the state database has a newer one",
                guildId=str(guild_id),
                context={"made_at": change.since},
            )

    async def desired_presence(self) -> list[VoicePresence]:
        """Every guild whose voice channel the bot should be in, e.g. after a restart."""
        async with self._settled():
            async with (
                self._operation("read_presence", read=True) as db,
                db.execute(
                    "SELECT guild_id, channel_id, started_by, text_channel_id, updated_at"
                    " FROM guild_voice_state WHERE desired = 1 AND channel_id IS NOT NULL"
                ) as cursor,
            ):
                rows = await cursor.fetchall()
            found = {
                int(r[0]): VoicePresence(int(r[0]), int(r[1]), r[2], r[3], str(r[4])) for r in rows
            }
            for guild_id, change in self._presence.items():
                if change.channel_id is None:
                    found.pop(guild_id, None)
                else:
                    found[guild_id] = VoicePresence(
                        guild_id,
                        change.channel_id,
                        change.started_by,
                        change.text_channel_id,
                        change.since,
                    )
        return [found[guild_id] for guild_id in sorted(found)]

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
            self._operation("read_optouts", read=True) as db,
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
        """Count usage (written in the background)."""
        date = (day or dt.datetime.now(dt.UTC).date()).isoformat()
        key = (guild_id, date, kind)
        self._usage[key] = self._usage.get(key, 0.0) + amount
        self._write_soon()

    async def _write_usage(self, key: UsageKey, amount: float) -> None:
        """Add to a day's usage; the first write of a new day also removes the rows more
        than ``USAGE_KEPT_DAYS`` older."""
        oldest_kept = (
            dt.date.fromisoformat(key[1]) - dt.timedelta(days=USAGE_KEPT_DAYS)
        ).isoformat()
        async with self._operation("add_usage") as db:
            await db.execute(
                "INSERT INTO daily_usage (guild_id, day, kind, amount) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id, day, kind)"
                " DO UPDATE SET amount = amount + excluded.amount",
                (*key, amount),
            )
            if oldest_kept > self._usage_pruned_before:
                await db.execute("DELETE FROM daily_usage WHERE day < ?", (oldest_kept,))
        self._usage_pruned_before = max(self._usage_pruned_before, oldest_kept)

    async def usage(self, guild_id: int, *, day: dt.date | None = None) -> dict[str, float]:
        """A guild's usage on ``day`` (today, UTC), unwritten usage included."""
        date = (day or dt.datetime.now(dt.UTC).date()).isoformat()
        async with self._settled():
            async with (
                self._operation("read_usage", read=True) as db,
                db.execute(
                    "SELECT kind, amount FROM daily_usage WHERE guild_id = ? AND day = ?",
                    (guild_id, date),
                ) as cursor,
            ):
                used = {str(row[0]): float(row[1]) for row in await cursor.fetchall()}
            for pending in (self._usage, self._usage_writing):
                for (guild, pending_day, kind), amount in pending.items():
                    if (guild, pending_day) == (guild_id, date):
                        used[kind] = used.get(kind, 0.0) + amount
        return used


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


def _now() -> str:
    """Now, as the database writes ``updated_at``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
