"""CPU, RSS, file descriptors and threads of a process, read from /proc every second."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    t: float  # monotonic
    cpu_seconds: float  # user + system, all threads
    rss_mib: float
    threads: int
    fds: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def read_proc(pid: int) -> ProcSample | None:
    """One sample, or None once the process is gone."""
    root = Path(f"/proc/{pid}")
    try:
        stat = (root / "stat").read_text()
        status = (root / "status").read_text()
        fds = len(os.listdir(root / "fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(values["VmRSS"].split()[0])
    return ProcSample(time.monotonic(), cpu, rss_kib / 1024, int(values["Threads"]), fds)


class ProcessMonitor:
    """Samples a process until stopped (or it exits); ``samples`` grow one per interval."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[ProcSample] = []
        self._task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    def sample_now(self) -> ProcSample | None:
        sample = read_proc(self.pid)
        if sample is not None:
            self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while self.sample_now() is not None:
            with contextlib.suppress(TimeoutError):  # one sample per interval until stopped
                await asyncio.wait_for(self._stopped.wait(), self.interval)
            if self._stopped.is_set():
                return

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"monitor-{self.pid}")

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
