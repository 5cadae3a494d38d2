"""AppStatus readiness rules and the LoopMonitor's lag measurement."""

from __future__ import annotations

import asyncio
import time

import pytest

from openclaw_voice.ops.status import AppStatus, LoopMonitor, SlotRole


def _busy_wait(seconds: float) -> None:
    """Hold the event loop the way a blocking call in a coroutine would."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.parametrize(
    ("slot_role", "connected", "shutting_down", "expected"),
    [
        ("active", True, False, []),
        ("active", False, False, ["discord not connected"]),
        ("standby", True, False, ["standby"]),
        ("standby", False, False, ["standby", "discord not connected"]),
        ("active", True, True, ["shutting down"]),
        ("standby", False, True, ["shutting down", "standby", "discord not connected"]),
    ],
    ids=[
        "active-connected",
        "active-disconnected",
        "standby-connected",
        "standby-disconnected",
        "active-shutting-down",
        "everything-wrong",
    ],
)
def test_not_ready_reasons(
    slot_role: SlotRole, connected: bool, shutting_down: bool, expected: list[str]
) -> None:
    status = AppStatus(
        version="1.0.0",
        environment="production",
        slot_role=slot_role,
        discord_connected=connected,
        shutting_down=shutting_down,
    )

    assert status.not_ready_reasons() == expected


def test_defaults() -> None:
    status = AppStatus(version="1.0.0", environment="development")

    assert status.slot_role == "active"
    assert status.guild_ids == set()
    assert status.active_sessions == 0
    assert status.not_ready_reasons() == ["discord not connected"]
    assert status.loop_lag_seconds == 0.0
    assert not status.loop_monitor.running


def test_instances_do_not_share_mutable_state() -> None:
    first = AppStatus(version="1", environment="development")
    second = AppStatus(version="1", environment="development")

    first.guild_ids.add(42)

    assert second.guild_ids == set()
    assert first.loop_monitor is not second.loop_monitor


def test_uptime_counts_from_started_at() -> None:
    status = AppStatus(version="1", environment="development", started_at=time.monotonic() - 5)

    assert 5 <= status.uptime_seconds() < 60


def test_uptime_is_never_negative() -> None:
    status = AppStatus(version="1", environment="development", started_at=time.monotonic() + 60)

    assert status.uptime_seconds() == 0.0


@pytest.mark.parametrize("interval", [0, -1.0])
def test_loop_monitor_rejects_non_positive_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        LoopMonitor(interval=interval)


async def test_loop_monitor_detects_a_blocked_loop() -> None:
    monitor = LoopMonitor(interval=0.02)
    monitor.start()
    try:
        # Once a tick has been measured the monitor is waiting for the next one, so the
        # busy wait below starts while that tick is pending.
        await monitor.next_tick()
        _busy_wait(0.3)
        lag = await monitor.next_tick()
    finally:
        await monitor.stop()

    assert lag >= 0.2
    assert monitor.lag_seconds == lag


async def test_status_reports_the_monitor_lag() -> None:
    status = AppStatus(
        version="1", environment="development", loop_monitor=LoopMonitor(interval=0.02)
    )
    status.loop_monitor.start()
    try:
        await status.loop_monitor.next_tick()
        _busy_wait(0.25)
        lag = await status.loop_monitor.next_tick()
    finally:
        await status.loop_monitor.stop()

    assert status.loop_lag_seconds == lag >= 0.15


async def test_loop_monitor_start_is_idempotent_and_restartable() -> None:
    monitor = LoopMonitor(interval=0.01)
    monitor.start()
    tasks_after_first_start = asyncio.all_tasks()
    monitor.start()
    assert asyncio.all_tasks() == tasks_after_first_start
    await monitor.next_tick()
    await monitor.stop()
    stopped = monitor.running

    monitor.start()
    restarted = monitor.running
    assert await monitor.next_tick() >= 0.0
    await monitor.stop()

    assert (stopped, restarted) == (False, True)


async def test_loop_monitor_stop_cancels_waiters_and_is_idempotent() -> None:
    monitor = LoopMonitor(interval=3600)
    monitor.start()
    waiter = monitor.next_tick()

    await monitor.stop()
    await monitor.stop()

    assert waiter.cancelled()
    assert not monitor.running


async def test_next_tick_requires_a_running_monitor() -> None:
    monitor = LoopMonitor()

    with pytest.raises(RuntimeError, match="not running"):
        monitor.next_tick()


async def test_loop_monitor_skips_waiters_already_cancelled() -> None:
    monitor = LoopMonitor(interval=0.01)
    monitor.start()
    try:
        abandoned = monitor.next_tick()
        abandoned.cancel()
        lag = await monitor.next_tick()
    finally:
        await monitor.stop()

    assert abandoned.cancelled()
    assert lag >= 0.0


def test_loop_monitor_exposes_its_interval() -> None:
    assert LoopMonitor(interval=0.25).interval == 0.25


async def test_loop_monitor_stop_cancels_its_task() -> None:
    monitor = LoopMonitor(interval=3600)
    monitor.start()
    tasks = [task for task in asyncio.all_tasks() if task.get_name() == "loop-monitor"]
    assert len(tasks) == 1

    await monitor.stop()

    assert tasks[0].cancelled()
