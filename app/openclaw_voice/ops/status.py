"""Live application status shared between the bot and the ops HTTP server.

The application mutates one `AppStatus`; the ops server only reads it. `LoopMonitor`
measures event-loop responsiveness so `/health` can tell "alive" from "alive but stuck".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Literal

SlotRole = Literal["active", "standby"]


class LoopMonitor:
    """Measures how late a periodic asyncio tick fires.

    A tick scheduled `interval` seconds ahead that fires late means something held the
    loop (blocking I/O, CPU work that belongs in an executor); the lateness is the lag.
    """

    def __init__(self, interval: float = 0.5) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self._interval = interval
        self._lag = 0.0
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[float]] = []

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def lag_seconds(self) -> float:
        """Lateness of the most recent tick, in seconds (0.0 before the first tick)."""
        return self._lag

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start ticking on the running loop; a second call while running is a no-op."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")

    async def stop(self) -> None:
        """Stop ticking; waiters on `next_tick` are cancelled. Safe to call when stopped."""
        task, self._task = self._task, None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.cancel()
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def next_tick(self) -> asyncio.Future[float]:
        """A future resolved with the lag of the first tick measured after this call.

        Lets callers (tests, diagnostics) synchronise on the monitor instead of sleeping;
        it is cancelled if the monitor stops first.
        """
        if not self.running:
            raise RuntimeError("LoopMonitor is not running")
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._lag = max(0.0, loop.time() - due)
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(self._lag)


@dataclass
class AppStatus:
    """What the ops endpoints report; updated in place by the application."""

    version: str
    environment: str
    slot_role: SlotRole = "active"
    started_at: float = field(default_factory=time.monotonic)
    discord_connected: bool = False
    guild_ids: set[int] = field(default_factory=set)
    active_sessions: int = 0
    shutting_down: bool = False
    loop_monitor: LoopMonitor = field(default_factory=LoopMonitor)

    @property
    def loop_lag_seconds(self) -> float:
        return self.loop_monitor.lag_seconds

    def uptime_seconds(self) -> float:
        return max(0.0, time.monotonic() - self.started_at)

    def not_ready_reasons(self) -> list[str]:
        """Why this process must not receive traffic now; an empty list means ready.

        Only the active slot holds the Discord session, so a standby slot is never ready:
        HAProxy's `/ready` check is what routes traffic to the active slot.
        """
        reasons: list[str] = []
        if self.shutting_down:
            reasons.append("shutting down")
        if self.slot_role != "active":
            reasons.append("standby")
        if not self.discord_connected:
            reasons.append("discord not connected")
        return reasons
