"""Run the real ``openclaw-voice`` CLI as a subprocess with a controlled environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

CLI = (sys.executable, "-m", "openclaw_voice")


def cli_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Only PATH/HOME (and coverage's own variables) from the test's environment."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name in ("PATH", "HOME", "LANG") or name.startswith("COVERAGE")
    }
    return {**inherited, **(extra or {})}


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> CliResult:
    completed = subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [*CLI, *args],
        env=cli_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


async def start_cli(*args: str, env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start the CLI in the background (for ``run``); the caller must stop and reap it."""
    return await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=cli_environment(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, within: float = 30) -> CliResult:
    """Wait for the process to end (killing it after ``within`` seconds); collect its output."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())
