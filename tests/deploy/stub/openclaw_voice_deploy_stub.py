"""Stand-in for ``openclaw-voice run`` in the Molecule scenario (molecule/openclaw_voice),
where no Discord exists (tests/deploy runs the real bot against the fake Discord).

It is the real bot minus the Discord client: the real settings loader reads the unit's
EnvironmentFiles (so a bad rendered setting fails here as it would in the bot), the real
ops server answers ``/health`` and ``/ready``, and the real ``SystemdNotifier`` sends
READY=1 once the ops server serves and pings the watchdog from the event loop. The
Discord connection is simulated as up. ``/ready`` answers 503 ("standby") while the
file ``$STATE_DIR/deploy-stub-standby-<OPS_PORT>`` exists, so a test can choose which
slot HAProxy should find ready.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from openclaw_voice import __version__
from openclaw_voice.config import ConfigError, Settings, load_settings
from openclaw_voice.ops.logging import configure_logging
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.redaction import Redactor
from openclaw_voice.ops.server import OpsServer
from openclaw_voice.ops.status import AppStatus, LoopMonitor
from openclaw_voice.ops.systemd import SystemdNotifier

log = structlog.get_logger("openclaw_voice_deploy_stub")


@dataclass
class StubStatus(AppStatus):
    """AppStatus whose standby flag is a file the test creates or removes."""

    standby_flag: Path | None = None

    def not_ready_reasons(self) -> list[str]:
        reasons = super().not_ready_reasons()
        if self.standby_flag is not None and self.standby_flag.exists():
            reasons.append("standby")
        return reasons


async def serve(settings: Settings) -> int:
    status = StubStatus(
        version=__version__,
        environment=settings.app_env,
        loop_monitor=LoopMonitor(settings.health_check_interval),
        standby_flag=settings.state_dir / f"deploy-stub-standby-{settings.ops_port}",
    )
    status.discord_connected = True  # simulated: there is no Discord in the deploy test
    server = OpsServer(
        status,
        Metrics() if settings.prometheus_enabled else None,
        host=settings.ops_host,
        port=settings.ops_port,
        max_loop_lag=max(1.0, 2 * settings.health_check_interval),
    )
    notifier = SystemdNotifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    notifier.ready(f"deploy stub serving ops on {settings.ops_host}:{server.port}")
    notifier.start_watchdog()
    log.info("deploy stub started", context={"ops": f"{settings.ops_host}:{server.port}"})
    await stop.wait()
    notifier.stopping()
    await notifier.stop_watchdog()
    await server.stop()
    log.info("deploy stub stopped")
    return 0


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        for problem in error.problems:
            sys.stderr.write(f"config error: {problem}\n")
        return 2
    configure_logging(
        level=settings.log_level,
        service="openclaw-voice",
        environment=settings.app_env,
        redactor=Redactor(settings.secret_values()),
    )
    return asyncio.run(serve(settings))
