"""Sliding-window rate limits on slash commands, per user and per guild."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0
MAX_TRACKED_KEYS = 10_000


class SlidingWindowLimiter:
    """At most ``limit`` events per key in any 60 s window; ``limit`` 0 turns it off."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._events: dict[int, deque[float]] = {}

    def retry_after(self, key: int) -> float:
        """0 when an event for ``key`` is allowed now (and records it), else seconds to wait."""
        if self.limit <= 0:
            return 0.0
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= WINDOW_SECONDS:
            events.popleft()
        if len(events) >= self.limit:
            return WINDOW_SECONDS - (now - events[0])
        events.append(now)
        if len(self._events) > MAX_TRACKED_KEYS:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        idle = [
            key
            for key, events in self._events.items()
            if not events or now - events[-1] >= WINDOW_SECONDS
        ]
        for key in idle:
            del self._events[key]


class CommandLimits:
    """Both limits a command must pass; the user's is checked first."""

    def __init__(
        self, per_user: int, per_guild: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.user = SlidingWindowLimiter(per_user, clock=clock)
        self.guild = SlidingWindowLimiter(per_guild, clock=clock)

    def check(self, user_id: int, guild_id: int) -> float:
        """Seconds to wait, or 0 when the command may run (then it is counted)."""
        wait = self.user.retry_after(user_id)
        if wait:
            return wait
        return self.guild.retry_after(guild_id)
