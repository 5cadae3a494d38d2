"""Command rate limits: per user, per guild, sliding 60 s window, 0 = off."""

from __future__ import annotations

from openclaw_voice.discord.ratelimit import MAX_TRACKED_KEYS, CommandLimits, SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_slides() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, clock=clock)
    assert limiter.retry_after(1) == 0
    clock.now += 10
    assert limiter.retry_after(1) == 0
    assert limiter.retry_after(1) == 50  # the first event leaves the window in 50 s
    assert limiter.retry_after(2) == 0  # other keys are independent
    clock.now += 50
    assert limiter.retry_after(1) == 0


def test_zero_means_unlimited() -> None:
    limiter = SlidingWindowLimiter(0)
    assert all(limiter.retry_after(1) == 0 for _ in range(1000))


def test_user_then_guild() -> None:
    clock = Clock()
    limits = CommandLimits(per_user=1, per_guild=2, clock=clock)
    assert limits.check(user_id=1, guild_id=9) == 0
    assert limits.check(user_id=1, guild_id=9) > 0  # the user's limit
    assert limits.check(user_id=2, guild_id=9) == 0
    assert limits.check(user_id=3, guild_id=9) > 0  # the guild's limit


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(5, clock=clock)
    for key in range(MAX_TRACKED_KEYS):
        limiter.retry_after(key)
    clock.now += 61
    limiter.retry_after(MAX_TRACKED_KEYS + 1)
    assert len(limiter._events) == 1
