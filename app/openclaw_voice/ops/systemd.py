"""A tiny sd_notify client: readiness, status and watchdog pings for `Type=notify` units.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace). Outside systemd
the variable is unset and every call is a no-op returning False, so the application calls
these unconditionally.

The watchdog task pings ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` from the event loop
itself: when the loop freezes (a blocking call, a deadlock, SIGSTOP) the pings stop and
systemd restarts the unit after ``WatchdogSec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def _address(environ: Mapping[str, str]) -> str | None:
    """The socket address from the environment; abstract names get their NUL byte."""
    path = environ.get(NOTIFY_SOCKET, "")
    if not path:
        return None
    if path.startswith("@"):
        return "\0" + path[1:]
    if path.startswith("/"):
        return path
    return None  # vsock and other transports: not used by the units we ship


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification (``"READY=1"``, ``"WATCHDOG=1"``, ...); True when sent.

    Returns False without error when not running under systemd, and logs (once per call)
    when the socket is configured but the datagram cannot be delivered.
    """
    address = _address(os.environ if environ is None else environ)
    if address is None or not state:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never block the event loop: a reader that stopped reading (a full queue) costs
            # one lost notification, not a frozen bot.
            sock.sendto(state.encode("utf-8"), socket.MSG_DONTWAIT, address)
    except OSError as error:
        log.warning("sd_notify failed", error=f"{type(error).__name__}: {error}")
        return False
    return True


class SystemdNotifier:
    """Readiness, stopping, status and watchdog notifications for one process."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether a notification socket is configured (i.e. we run under systemd)."""
        return _address(self._environ) is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WatchdogSec), or None when not asked for.

        None too when ``$WATCHDOG_PID`` names another process (the watchdog is meant for it).
        """
        if not self.enabled:
            return None
        try:
            usec = int(self._environ.get(WATCHDOG_USEC, ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        owner = self._environ.get(WATCHDOG_PID)
        if owner and owner != str(os.getpid()):
            return None
        return usec / 1_000_000 / 2

    def _send(self, state: str) -> bool:
        return notify(state, environ=self._environ)

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up finished (the unit becomes active)."""
        message = "READY=1"
        if status:
            message += f"\nSTATUS={status}"
        return self._send(message)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd a graceful stop is under way."""
        message = "STOPPING=1"
        if status:
            message += f"\nSTATUS={status}"
        return self._send(message)

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self._send(f"STATUS={text.replace(chr(10), ' ')}")

    @property
    def watchdog_running(self) -> bool:
        return self._watchdog is not None and not self._watchdog.done()

    def start_watchdog(self) -> bool:
        """Start pinging from the running event loop; False when no watchdog is asked for."""
        interval = self.watchdog_interval
        if interval is None or self.watchdog_running:
            return False
        self._watchdog = asyncio.get_running_loop().create_task(
            self._ping_forever(interval), name="systemd-watchdog"
        )
        log.debug("systemd watchdog started", interval_seconds=interval)
        return True

    async def stop_watchdog(self) -> None:
        """Stop the pings (idempotent)."""
        task, self._watchdog = self._watchdog, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _ping_forever(self, interval: float) -> None:
        while True:
            self._send("WATCHDOG=1")
            await asyncio.sleep(interval)
