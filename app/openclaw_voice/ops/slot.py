"""The slot role (active/standby) of a blue-green deployment, and the guard against two actives.

Both slots of a host log in as the same bot and both receive every gateway event, so only
the slot holding the *active lock* (an exclusive ``flock`` on ``active.lock`` in the shared
state directory) acts on them. The deploy playbook changes roles through the loopback
admin endpoint; a promotion that would make a second active slot is refused because the
lock is held. Interactions are additionally claimed in the shared database, so one that
arrives while the roles flip is answered exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import structlog

from openclaw_voice.ops.status import AppStatus

log = structlog.get_logger(__name__)

Role = Literal["active", "standby"]
LOCK_NAME = "active.lock"


class RoleConflict(Exception):
    """Another process holds the active lock: promoting this one would make two actives."""


class ActiveLock:
    """An exclusive, non-blocking flock; released by :meth:`release` or when the process dies."""

    def __init__(self, state_dir: Path, slot: str) -> None:
        self.path = state_dir / LOCK_NAME
        self.slot = slot
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RoleConflict(f"the active lock {self.path} is held by {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"slot {self.slot} pid {os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock


class SlotController:
    """Runs promotions and demotions one at a time and keeps AppStatus's role current.

    ``on_promote`` starts acting (rejoin channels, sync commands) and ``on_demote`` stops
    (finish the reply in progress, leave voice keeping the desired presence); both are
    the application's. ``acting`` is set while this slot may answer events.
    """

    def __init__(
        self,
        status: AppStatus,
        lock: ActiveLock,
        *,
        on_promote: Callable[[], Awaitable[None]],
        on_demote: Callable[[], Awaitable[None]],
    ) -> None:
        self.status = status
        self.lock = lock
        self._on_promote = on_promote
        self._on_demote = on_demote
        self.acting = asyncio.Event()
        self._switch = asyncio.Lock()
        status.slot_role = "standby"

    @property
    def role(self) -> Role:
        return self.status.slot_role

    async def set_role(self, role: Role) -> Role:
        async with self._switch:
            if role == self.status.slot_role:
                return role
            if role == "active":
                self.lock.acquire()  # raises RoleConflict
                try:
                    self.status.slot_role = "active"
                    self.acting.set()
                    await self._on_promote()
                except BaseException:
                    self.acting.clear()
                    self.status.slot_role = "standby"
                    self.lock.release()
                    raise
                log.info("slot promoted to active", context={"slot": self.lock.slot})
            else:
                self.acting.clear()
                self.status.slot_role = "standby"
                try:
                    await self._on_demote()
                finally:
                    self.lock.release()
                log.info("slot demoted to standby", context={"slot": self.lock.slot})
            return role

    async def wait_acting(self, within: float) -> bool:
        """True once this slot acts; False if it does not within ``within`` seconds."""
        if self.acting.is_set():
            return True
        try:
            async with asyncio.timeout(within):
                await self.acting.wait()
        except TimeoutError:
            return False
        return True
