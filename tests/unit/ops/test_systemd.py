"""The sd_notify client against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw_voice.ops.systemd import SystemdNotifier, notify

# Generous bound for a datagram that is already queued or due within milliseconds.
DEADLINE = 5.0


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a filesystem path, like systemd's notify socket."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def _pending(sock: socket.socket) -> list[str]:
    """Every datagram already queued, without waiting."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


async def _receive(sock: socket.socket) -> str:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), DEADLINE)
    return data.decode()


def test_notify_sends_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("READY=1", environ={"NOTIFY_SOCKET": path})
    assert _pending(sock) == ["READY=1"]


def test_notify_abstract_namespace() -> None:
    name = f"openclaw-voice-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        assert notify("STATUS=hello", environ={"NOTIFY_SOCKET": "@" + name})
        assert _pending(sock) == ["STATUS=hello"]


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234"])
def test_notify_without_usable_socket_is_a_no_op(value: str) -> None:
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": value} if value else {})
    assert not SystemdNotifier(environ={}).ready()


def test_notify_uses_process_environment(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1")
    assert SystemdNotifier().enabled
    assert _pending(sock) == ["READY=1"]


def test_notify_to_missing_socket_reports_false(tmp_path: Path) -> None:
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_empty_state_is_not_sent(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert not notify("", environ={"NOTIFY_SOCKET": path})
    assert _pending(sock) == []


def test_ready_stopping_status_messages(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.ready("serving ops on 127.0.0.1:8081")
    assert notifier.status("standby\nwaiting")
    assert notifier.stopping()
    assert notifier.stopping("draining")
    assert _pending(sock) == [
        "READY=1",
        "READY=1\nSTATUS=serving ops on 127.0.0.1:8081",
        "STATUS=standby waiting",
        "STOPPING=1",
        "STOPPING=1\nSTATUS=draining",
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.25),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(
    listener: tuple[socket.socket, str], environ: dict[str, str], expected: float | None
) -> None:
    _, path = listener
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, **environ})
    assert notifier.watchdog_interval == expected


def test_no_watchdog_without_socket() -> None:
    assert SystemdNotifier(environ={"WATCHDOG_USEC": "1000000"}).watchdog_interval is None


async def test_watchdog_not_started_when_not_asked_for(
    listener: tuple[socket.socket, str],
) -> None:
    _, path = listener
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path})
    assert not notifier.start_watchdog()
    assert not notifier.watchdog_running
    await notifier.stop_watchdog()  # idempotent when never started


async def test_watchdog_pings_while_the_loop_runs(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})
    assert notifier.start_watchdog()
    assert not notifier.start_watchdog()  # one task only
    try:
        assert notifier.watchdog_running
        pings = [await _receive(sock) for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
    finally:
        await notifier.stop_watchdog()
    assert not notifier.watchdog_running


async def test_a_frozen_loop_stops_the_pings(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    notifier.start_watchdog()
    try:
        assert await _receive(sock) == "WATCHDOG=1"
        _pending(sock)
        # Simulate a hung event loop: block it for 5 ping intervals (not synchronisation).
        time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop is the point
        assert _pending(sock) == [], "pings must come from the loop, not a thread"
        # Once the loop runs again the pings resume.
        assert await _receive(sock) == "WATCHDOG=1"
    finally:
        await notifier.stop_watchdog()
