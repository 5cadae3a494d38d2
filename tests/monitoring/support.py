"""Helpers for the monitoring checks: the real promtool/amtool/Prometheus/Alertmanager
binaries, the repository's monitoring files, and background processes torn down by PID."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
RECORDING_RULES = PROMETHEUS_DIR / "rules.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests"
ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "openclaw-voice.json"
RUNBOOKS = REPO / "docs" / "runbooks"
# Alert annotations link runbooks by their address in the repository's web view.
RUNBOOK_URL_PREFIX = "https://github.com/openclaw/openclaw-discord-voice/blob/main/"

INSTALL_HINT = "install it with scripts/monitoring-test-packages (tox -e monitoring runs it)"

T = TypeVar("T")


def require_tool(*names: str) -> str:
    """The path of the first of ``names`` on PATH; fails the test (never skips) otherwise."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail(f"{' or '.join(names)} not found on PATH: {INSTALL_HINT}", pytrace=False)


def run_tool(args: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a monitoring tool to completion from the repository root."""
    return subprocess.run(  # noqa: S603 - fixed tool paths and arguments
        list(args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def load_yaml(path: Path) -> Any:
    """Parse a YAML file with PyYAML (present in every dev environment, through bandit).

    Imported by name: PyYAML ships no type information and the project installs no stubs,
    so the module is used as the untyped module it is.
    """
    yaml = importlib.import_module("yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_config(path: Path, config: Any) -> Path:
    """Write a config as JSON, which Prometheus and Alertmanager read as YAML."""
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule in alerts.yml (recording rules excluded)."""
    document = load_yaml(ALERTS)
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for servers that need a fixed
    port in their flags (Prometheus, Alertmanager)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class BackgroundProcess:
    """A server started in the background with its output in a log file; `stop` ends it
    by its PID (SIGTERM, then SIGKILL) and is safe to call more than once."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, grace: float = 10) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        state = "running" if self.running else f"exited {self.process and self.process.returncode}"
        return f"--- {self.name} ({state}), last log lines:\n{self.log_tail()}"


async def wait_for(
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout: float = 30,  # noqa: ASYNC109 - a bounded poll of external processes
    interval: float = 0.2,
    diagnostics: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``check`` until it returns something other than None, or fail after ``timeout``.

    Used only for conditions inside other processes (Prometheus, Alertmanager), which
    offer nothing to wait on but their HTTP APIs.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = await check()
        # Not listening yet, not ready (503), or not a complete answer yet.
        except (TimeoutError, OSError, ValueError, aiohttp.ClientError) as exc:
            last_error, result = exc, None
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{detail}\n{diagnostics()}")
        await asyncio.sleep(interval)
