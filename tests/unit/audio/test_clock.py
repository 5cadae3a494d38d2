"""The shared 20 ms clock: work in the pool, delivery on the loop, catch-up without drift."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from openclaw_voice.audio.clock import Delivery, FrameClock, Work
from openclaw_voice.audio.packets import Utterance
from openclaw_voice.audio.user_stream import UserAudioStream
from openclaw_voice.audio.vad import VadPool
from tests.unit.audio.test_user_stream import START, _talk


class _Probe:
    def __init__(self, *, fail: bool = False, batch_step: Callable[[], None] | None = None) -> None:
        self.batch_step = batch_step
        self.ticks: list[float] = []
        self.work_threads: set[str] = set()
        self.delivery_threads: set[str] = set()
        self.fail = fail

    def prepare(self, now: float) -> Work:
        self.ticks.append(now)

        def work() -> Delivery:
            self.work_threads.add(threading.current_thread().name)
            if self.fail:
                raise RuntimeError("boom")
            return lambda: self.delivery_threads.add(threading.current_thread().name)

        return work


async def test_tick_runs_work_in_the_pool_and_delivers_on_the_loop() -> None:
    clock = FrameClock(workers=2)
    probes = [_Probe() for _ in range(6)] + [_Probe(fail=True)]
    for probe in probes:
        clock.add(probe)
    await clock.tick(1.0)
    await clock.tick(1.02)
    main = threading.current_thread().name
    for probe in probes:
        assert probe.ticks == [1.0, 1.02]
        assert all(name.startswith("audio-clock") for name in probe.work_threads)
    for probe in probes[:-1]:
        assert probe.delivery_threads == {main}
    assert probes[-1].delivery_threads == set()
    clock.remove(probes[0])
    clock.remove(probes[0])  # removing twice is harmless
    assert clock.streams == 6
    await clock.stop()


async def test_inline_clock_needs_no_pool() -> None:
    batches: list[str] = []

    def step() -> None:
        batches.append("ran")

    clock = FrameClock(workers=0)
    probe = _Probe(batch_step=step)
    clock.add(probe)
    clock.add(_Probe(batch_step=step))  # a shared step runs once per tick
    await clock.tick(5.0)
    assert probe.work_threads == {threading.current_thread().name}
    assert batches == ["ran"]
    await clock.stop()


async def test_a_failing_batch_step_does_not_stop_the_clock() -> None:
    def fail() -> None:
        raise RuntimeError("onnx exploded")

    clock = FrameClock(workers=2)
    probes = [_Probe(batch_step=fail), _Probe(batch_step=fail)]
    for probe in probes:
        clock.add(probe)
    await clock.tick(1.0)
    await clock.tick(1.02)
    assert all(len(p.delivery_threads) == 1 for p in probes)
    assert clock.ticks == 2
    await clock.stop()


async def test_run_catches_up_missed_slots_then_skips_the_rest() -> None:
    times = iter([0.0, 0.0])
    clock = FrameClock(workers=0, max_catch_up=10, time_fn=lambda: next(times, 1.0))
    probe = _Probe()
    clock.add(probe)
    task = asyncio.get_running_loop().create_task(clock.run())

    def prepare(now: float) -> Work:
        probe.ticks.append(now)
        if len(probe.ticks) == 11:
            task.cancel()
        return lambda: lambda: None

    probe.prepare = prepare  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await task
    # slot 0 on time, then at t = 1.0 (50 slots behind): 40 skipped, 10 caught up, on the grid
    assert probe.ticks[0] == 0.0
    assert clock.skipped == 40
    assert probe.ticks[1:] == pytest.approx([0.82 + 0.02 * i for i in range(10)])


async def test_start_and_stop() -> None:
    clock = FrameClock(workers=1)
    clock.start()
    clock.start()  # already running
    await clock.stop()
    await clock.stop()


async def test_user_streams_through_the_pooled_clock() -> None:
    packets, _ = _talk()
    pool = VadPool(keep=2)
    clock = FrameClock(workers=2)
    pool.prewarm(2)
    got: dict[int, list[Utterance]] = {1: [], 2: []}
    streams = [UserAudioStream(user, on_utterance=got[user].append, vad_pool=pool) for user in got]
    for stream in streams:
        clock.add(stream)
    index = 0
    for n in range(round((packets[-1].arrival + 1.5 - START) / 0.02) + 1):
        now = START + n * 0.02
        while index < len(packets) and packets[index].arrival <= now:
            for stream in streams:
                stream.push(packets[index])
            index += 1
        await clock.tick(now)
    assert [len(u) for u in got.values()] == [2, 2]
    for stream in streams:
        clock.remove(stream)
        stream.close()
    await clock.stop()
    assert clock.ticks > 200
