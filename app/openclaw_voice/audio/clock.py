"""One 20 ms clock per guild: ticks every receive stream, CPU work in a small thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

Delivery = Callable[[], None]
Work = Callable[[], Delivery]

FRAME_SECONDS = 0.020


class FrameStream(Protocol):
    """A clocked stream: prepare (loop) -> work (pool) -> shared batch_step once -> delivery."""

    def prepare(self, now: float) -> Work: ...

    @property
    def batch_step(self) -> Callable[[], None] | None: ...


def _noop() -> None:
    return None


def _run_batch(works: list[Work]) -> list[Delivery]:
    """Runs a batch of stream work in a worker thread; a failing stream does not stop the rest."""
    deliveries: list[Delivery] = []
    for work in works:
        try:
            deliveries.append(work())
        except Exception:
            log.exception("audio stream work failed")
            deliveries.append(_noop)
    return deliveries


def _run_steps(steps: list[Callable[[], None]]) -> None:
    """Runs the shared steps between work and delivery (the batched VAD); failures are logged."""
    for step in steps:
        try:
            step()
        except Exception:
            log.exception("audio batch step failed")


class FrameClock:
    """Ticks every 20 ms on the event loop, catching up missed slots without drift."""

    def __init__(
        self,
        *,
        interval: float = FRAME_SECONDS,
        workers: int = 2,
        max_catch_up: int = 10,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.workers = workers
        self.max_catch_up = max_catch_up
        self._time = time_fn
        self._streams: list[FrameStream] = []
        self._executor: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audio-clock")
            if workers > 0
            else None
        )
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.skipped = 0
        self._behind = False
        self.max_tick_seconds = 0.0

    def now(self) -> float:
        """The clock's time: the timeline of the voiced times of speech events."""
        return self._time()

    def add(self, stream: FrameStream) -> None:
        """Starts ticking a stream."""
        self._streams.append(stream)

    def remove(self, stream: FrameStream) -> None:
        """Stops ticking a stream."""
        with contextlib.suppress(ValueError):
            self._streams.remove(stream)

    @property
    def streams(self) -> int:
        """Number of streams ticked."""
        return len(self._streams)

    async def tick(self, now: float) -> None:
        """One slot for every stream: prepare on the loop, work in the pool, deliver on the loop."""
        started = time.perf_counter()
        works: list[Work] = []
        steps: list[Callable[[], None]] = []
        for stream in list(self._streams):
            try:
                works.append(stream.prepare(now))
            except Exception:
                log.exception("audio stream prepare failed")
            step = stream.batch_step
            if step is not None and step not in steps:
                steps.append(step)
        if self._executor is None or len(works) <= 1:
            deliveries = _run_batch(works)
            _run_steps(steps)
        else:
            loop = asyncio.get_running_loop()
            size = -(-len(works) // self.workers)
            batches = [works[i : i + size] for i in range(0, len(works), size)]
            results = await asyncio.gather(
                *(loop.run_in_executor(self._executor, _run_batch, b) for b in batches)
            )
            deliveries = [d for batch in results for d in batch]
            if steps:
                await loop.run_in_executor(self._executor, _run_steps, steps)
        for deliver in deliveries:
            try:
                deliver()
            except Exception:
                log.exception("audio stream delivery failed")
        self.ticks += 1
        self.max_tick_seconds = max(self.max_tick_seconds, time.perf_counter() - started)

    async def run(self) -> None:
        """Ticks until cancelled; slots missed beyond `max_catch_up` are skipped and counted."""
        origin = self._time()
        slot = 0  # slots are origin + n * interval: no accumulated drift
        while True:
            due = origin + slot * self.interval
            now = self._time()
            if now < due:
                await asyncio.sleep(due - now)
                continue
            late = int((now - due) / self.interval + 1e-9) + 1  # slots due, this one included
            if late > self.max_catch_up:
                skip = late - self.max_catch_up
                if not self._behind:  # once per burst
                    log.debug("audio clock behind, skipping slots", context={"skipped": skip})
                self._behind = True
                self.skipped += skip
                slot += skip
                due = origin + slot * self.interval
            elif late == 1:
                self._behind = False
            await self.tick(due)
            slot += 1

    def start(self) -> None:
        """Starts the clock task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="audio-clock")

    async def stop(self) -> None:
        """Stops ticking and shuts the worker pool down."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
