"""FallbackChain: unary calls and streams — retries, fallback, benching, time bounds, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.resilience import Attempt, FallbackChain, ProviderHealth, RetryPolicy

POLICY = RetryPolicy(attempt_timeout=1.0, overall_timeout=5.0, attempts_per_provider=2)


@dataclass
class Fake:
    """A provider whose attempts follow a script: an exception to raise or a value."""

    name: str
    script: list[BaseException | str] = field(default_factory=list)
    calls: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> str:
        self.calls += 1
        step = self.script.pop(0) if self.script else f"{self.name} ok"
        if isinstance(step, BaseException):
            raise step
        return step


def error(kind: ErrorKind, provider: str = "a", retry_after: float | None = None) -> ProviderError:
    return ProviderError(Stage.STT, kind, provider, kind.name.lower(), retry_after=retry_after)


class RecordedSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def chain_of(
    *providers: Fake,
    policy: RetryPolicy = POLICY,
    sleep: RecordedSleep | None = None,
    attempts: list[Attempt] | None = None,
    health: ProviderHealth | None = None,
) -> FallbackChain[Fake]:
    return FallbackChain(
        Stage.STT,
        providers,
        policy,
        sleep=sleep or RecordedSleep(),
        observer=None if attempts is None else attempts.append,
        health=health,
        rng=random.Random(7),
    )


async def run(provider: Fake) -> str:
    return await provider.run()


# --- unary ------------------------------------------------------------------------------


def test_a_chain_needs_a_provider() -> None:
    with pytest.raises(ValueError, match="at least one provider"):
        FallbackChain(Stage.STT, [], POLICY)


async def test_the_first_healthy_provider_answers() -> None:
    a, b = Fake("a"), Fake("b")
    attempts: list[Attempt] = []
    assert await chain_of(a, b, attempts=attempts).call(run) == "a ok"
    assert (a.calls, b.calls) == (1, 0)
    assert [(x.stage, x.provider, x.error) for x in attempts] == [(Stage.STT, "a", None)]
    assert attempts[0].seconds >= 0


async def test_a_retryable_failure_is_retried_with_jittered_backoff() -> None:
    a = Fake("a", [error(ErrorKind.UNAVAILABLE)])
    sleep = RecordedSleep()
    assert await chain_of(a, Fake("b"), sleep=sleep).call(run) == "a ok"
    assert a.calls == 2
    assert len(sleep.delays) == 1
    assert 0 <= sleep.delays[0] <= POLICY.base_delay


async def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(
        attempt_timeout=1, overall_timeout=50, attempts_per_provider=5, base_delay=1, max_delay=3
    )
    a = Fake("a", [error(ErrorKind.TIMEOUT)] * 4)
    sleep = RecordedSleep()
    await chain_of(a, policy=policy, sleep=sleep).call(run)
    ceilings = [1, 2, 3, 3]
    assert all(0 <= d <= c for d, c in zip(sleep.delays, ceilings, strict=True))


async def test_retry_after_is_honoured_exactly() -> None:
    a = Fake("a", [error(ErrorKind.RATE_LIMITED, retry_after=1.5)])
    sleep = RecordedSleep()
    assert await chain_of(a, sleep=sleep).call(run) == "a ok"
    assert sleep.delays == [1.5]


async def test_retry_after_past_the_deadline_falls_back_at_once() -> None:
    a, b = Fake("a", [error(ErrorKind.RATE_LIMITED, retry_after=30)]), Fake("b")
    sleep = RecordedSleep()
    assert await chain_of(a, b, sleep=sleep).call(run) == "b ok"
    assert sleep.delays == []
    assert a.calls == 1


async def test_repeated_failures_fall_back_to_the_next_provider() -> None:
    a = Fake("a", [error(ErrorKind.UNAVAILABLE), error(ErrorKind.TIMEOUT)])
    b = Fake("b")
    attempts: list[Attempt] = []
    assert await chain_of(a, b, attempts=attempts).call(run) == "b ok"
    assert [x.provider for x in attempts] == ["a", "a", "b"]
    assert a.calls == 2


async def test_a_non_retryable_failure_benches_the_provider_for_the_cooldown() -> None:
    now = [100.0]
    health = ProviderHealth(clock=lambda: now[0])
    a, b = Fake("a", [error(ErrorKind.AUTH)]), Fake("b")
    chain = chain_of(a, b, health=health)
    assert await chain.call(run) == "b ok"
    assert a.calls == 1
    assert await chain.call(run) == "b ok"
    assert a.calls == 1  # skipped while benched
    now[0] += POLICY.cooldown
    assert await chain.call(run) == "a ok"


async def test_an_outage_benches_the_provider_after_consecutive_failures() -> None:
    now = [100.0]
    health = ProviderHealth(clock=lambda: now[0])
    down = [error(ErrorKind.UNAVAILABLE)] * 5
    a, b = Fake("a", list(down)), Fake("b")
    attempts: list[Attempt] = []
    chain = chain_of(a, b, health=health, attempts=attempts)
    for _ in range(3):
        assert await chain.call(run) == "b ok"
    # Two requests paid a's two attempts each; the fourth failure benched it.
    assert [x.provider for x in attempts] == ["a", "a", "b", "a", "a", "b", "b"]
    assert not health.healthy("a")
    now[0] += POLICY.cooldown
    assert await chain.call(run) == "b ok"  # still down after the cool-down: benched again
    assert a.calls == 5
    assert not health.healthy("a")
    now[0] += POLICY.cooldown
    assert await chain.call(run) == "a ok"  # back: a success resets its count
    a.script = [error(ErrorKind.UNAVAILABLE)]
    assert await chain.call(run) == "a ok"  # one failure alone is retried, not benched
    assert health.healthy("a")


async def test_a_timeout_goes_to_the_next_provider_without_a_retry() -> None:
    a, b = Fake("a", [error(ErrorKind.TIMEOUT)]), Fake("b", [error(ErrorKind.TIMEOUT)])
    attempts: list[Attempt] = []
    assert await chain_of(a, b, attempts=attempts).call(run) == "b ok"
    assert [x.provider for x in attempts] == ["a", "b", "b"]  # the last one is retried


async def test_a_single_provider_is_never_benched_for_retryable_failures() -> None:
    a = Fake("a", [error(ErrorKind.UNAVAILABLE)] * 6)
    chain = chain_of(a)
    for _ in range(3):
        with pytest.raises(ProviderError):
            await chain.call(run)
    assert chain.health.healthy("a")


async def test_with_every_provider_benched_the_first_is_still_tried() -> None:
    health = ProviderHealth()
    health.bench("a", 60)
    health.bench("b", 60)
    a = Fake("a")
    assert await chain_of(a, Fake("b"), health=health).call(run) == "a ok"


@pytest.mark.parametrize(
    "kind", [ErrorKind.EMPTY_RESULT, ErrorKind.INPUT_TOO_LONG, ErrorKind.EMPTY_INPUT]
)
async def test_input_problems_do_not_bench(kind: ErrorKind) -> None:
    chain = chain_of(Fake("a", [error(kind)]), Fake("b"))
    with contextlib.suppress(ProviderError):
        await chain.call(run)
    assert chain.health.healthy("a")


async def test_empty_input_ends_the_chain_without_trying_others() -> None:
    a, b = Fake("a", [error(ErrorKind.EMPTY_INPUT)]), Fake("b")
    with pytest.raises(ProviderError) as caught:
        await chain_of(a, b).call(run)
    assert caught.value.kind is ErrorKind.EMPTY_INPUT
    assert b.calls == 0


async def test_the_last_error_is_raised_when_all_fail() -> None:
    a = Fake("a", [error(ErrorKind.UNAVAILABLE)] * 2)
    b = Fake("b", [error(ErrorKind.BAD_REQUEST, "b")])
    with pytest.raises(ProviderError) as caught:
        await chain_of(a, b).call(run)
    assert caught.value.provider == "b"
    assert caught.value.kind is ErrorKind.BAD_REQUEST


async def test_os_and_value_errors_become_unavailable_and_bugs_propagate() -> None:
    a = Fake("a", [ConnectionResetError("reset"), ValueError("garbled")])
    attempts: list[Attempt] = []
    assert await chain_of(a, Fake("b"), attempts=attempts).call(run) == "b ok"
    assert [x.error.kind for x in attempts if x.error] == [ErrorKind.UNAVAILABLE] * 2
    assert "ConnectionResetError" in str(attempts[0].error)
    with pytest.raises(RuntimeError, match="bug"):
        await chain_of(Fake("c", [RuntimeError("bug")])).call(run)


async def hang(provider: Fake) -> str:
    provider.calls += 1
    provider.entered.set()
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_an_attempt_past_its_timeout_is_a_timeout() -> None:
    policy = RetryPolicy(attempt_timeout=0.01, overall_timeout=1.0, attempts_per_provider=1)
    a = Fake("a")
    with pytest.raises(ProviderError) as caught:
        await chain_of(a, policy=policy).call(hang)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert caught.value.provider == "a"


async def test_the_overall_deadline_bounds_the_whole_chain() -> None:
    policy = RetryPolicy(attempt_timeout=10.0, overall_timeout=0.02, attempts_per_provider=3)
    a, b = Fake("a"), Fake("b")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderError) as caught:
        await chain_of(a, b, policy=policy).call(hang)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert loop.time() - started < 1.0
    assert a.calls == 1  # the first attempt used up the whole budget


async def test_no_time_left_is_reported_for_the_chain() -> None:
    policy = RetryPolicy(attempt_timeout=1.0, overall_timeout=0.0)
    with pytest.raises(ProviderError) as caught:
        await chain_of(Fake("a"), Fake("b"), policy=policy).call(run)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert caught.value.provider == "a,b"


async def test_cancellation_propagates_and_nothing_is_benched_or_observed() -> None:
    a = Fake("a")
    attempts: list[Attempt] = []
    chain = chain_of(a, Fake("b"), attempts=attempts)
    task = asyncio.create_task(chain.call(hang))
    await a.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == []
    assert chain.health.healthy("a")


async def test_concurrent_calls_keep_their_own_state() -> None:
    """A failure in one call must not steer another call running at the same time."""
    gate = asyncio.Event()
    entered = asyncio.Event()
    a, b = Fake("a"), Fake("b")
    attempts: list[Attempt] = []
    chain = chain_of(a, b, attempts=attempts)

    async def slow_failure(provider: Fake) -> str:
        provider.calls += 1
        if provider.name == "a" and provider.calls == 1:
            entered.set()
            await gate.wait()
            raise error(ErrorKind.UNAVAILABLE)
        return f"{provider.name} ok"

    first = asyncio.create_task(chain.call(slow_failure))
    await entered.wait()
    assert await chain.call(slow_failure) == "a ok"  # the second call, meanwhile
    gate.set()
    assert await first == "a ok"  # retried a after its own failure
    assert a.calls == 3
    assert b.calls == 0


# --- streams ----------------------------------------------------------------------------


@dataclass
class Streamer:
    """A streaming provider: yields ``items``, then raises ``fail_after`` if set."""

    name: str
    items: list[str] = field(default_factory=lambda: ["one", "two"])
    fail_before: BaseException | None = None
    fail_after: BaseException | None = None
    hang_before: bool = False
    hang_after: bool = False
    opened: int = 0
    closed: int = 0
    stalled: asyncio.Event = field(default_factory=asyncio.Event)

    async def open(self) -> AsyncIterator[str]:
        self.opened += 1
        try:
            if self.hang_before:
                await asyncio.Event().wait()
            if self.fail_before is not None:
                raise self.fail_before
            for item in self.items:
                yield item
            if self.hang_after:
                self.stalled.set()
                await asyncio.Event().wait()
            if self.fail_after is not None:
                raise self.fail_after
        finally:
            self.closed += 1


def streams(*providers: Streamer, policy: RetryPolicy = POLICY) -> FallbackChain[Streamer]:
    return FallbackChain(Stage.TTS, providers, policy, sleep=RecordedSleep())


def open_stream(provider: Streamer) -> AsyncIterator[str]:
    return provider.open()


async def collect(chain: FallbackChain[Streamer]) -> list[str]:
    return [item async for item in chain.stream(open_stream)]


async def drain(chain: FallbackChain[Streamer], into: list[str]) -> None:
    async for item in chain.stream(open_stream):
        into.append(item)


async def test_a_stream_passes_every_item_and_closes_the_provider() -> None:
    a = Streamer("a")
    assert await collect(streams(a, Streamer("b"))) == ["one", "two"]
    assert (a.opened, a.closed) == (1, 1)


async def test_failure_before_the_first_item_falls_back() -> None:
    a = Streamer("a", fail_before=ProviderError(Stage.TTS, ErrorKind.AUTH, "a", "bad key"))
    b = Streamer("b", items=["b1"])
    assert await collect(streams(a, b)) == ["b1"]
    assert a.closed == 1


async def test_an_empty_stream_falls_back_as_empty_result() -> None:
    a, b = Streamer("a", items=[]), Streamer("b", items=["b1"])
    chain = streams(a, b)
    assert await collect(chain) == ["b1"]
    assert chain.health.healthy("a")


async def test_a_slow_first_item_falls_back() -> None:
    policy = RetryPolicy(attempt_timeout=0.01, overall_timeout=1.0, attempts_per_provider=1)
    a, b = Streamer("a", hang_before=True), Streamer("b", items=["b1"])
    assert await collect(streams(a, b, policy=policy)) == ["b1"]
    assert a.closed == 1


async def test_failure_after_the_first_item_is_raised_without_fallback() -> None:
    broken = ProviderError(Stage.TTS, ErrorKind.UNAVAILABLE, "a", "cut")
    a, b = Streamer("a", fail_after=broken), Streamer("b")
    received: list[str] = []
    with pytest.raises(ProviderError) as caught:
        await drain(streams(a, b), received)
    assert caught.value is broken
    assert received == ["one", "two"]
    assert b.opened == 0
    assert a.closed == 1


async def test_a_stall_between_items_is_a_timeout() -> None:
    policy = RetryPolicy(attempt_timeout=1.0, overall_timeout=1.0, stall_timeout=0.01)
    a = Streamer("a", hang_after=True)
    received: list[str] = []
    with pytest.raises(ProviderError) as caught:
        await drain(streams(a, policy=policy), received)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert received == ["one", "two"]
    assert a.closed == 1


async def test_a_consumer_that_stops_early_closes_the_provider_stream_at_once() -> None:
    a = Streamer("a", items=["one", "two", "three"])
    stream = streams(a).stream(open_stream)
    assert await anext(stream) == "one"
    await stream.aclose()
    assert a.closed == 1


async def test_cancelling_mid_stream_propagates_and_closes_the_provider() -> None:
    a = Streamer("a", items=["one"], hang_after=True)
    received: list[str] = []

    task = asyncio.create_task(drain(streams(a), received))
    await a.stalled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.closed == 1


class ManualIterator:
    """A non-generator async iterator (like an SDK stream) that records aclose()."""

    def __init__(self) -> None:
        self.closed = False
        self.waiting = asyncio.Event()

    def __aiter__(self) -> ManualIterator:
        return self

    async def __anext__(self) -> str:
        self.waiting.set()
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def test_cancelling_before_the_first_item_closes_the_provider_iterator() -> None:
    iterator = ManualIterator()

    def open_manual(provider: Streamer) -> AsyncIterator[str]:
        return iterator

    async def consume() -> list[str]:
        return [item async for item in streams(Streamer("a")).stream(open_manual)]

    task = asyncio.create_task(consume())
    await iterator.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert iterator.closed


class Unclosable:
    """An async iterator without aclose() that fails at once."""

    def __aiter__(self) -> Unclosable:
        return self

    async def __anext__(self) -> str:
        raise ProviderError(Stage.TTS, ErrorKind.UNAVAILABLE, "a", "down")


async def test_an_iterator_without_aclose_still_falls_back() -> None:
    b = Streamer("b", items=["b1"])

    def open_either(provider: Streamer) -> AsyncIterator[str]:
        return Unclosable() if provider.name == "a" else provider.open()

    chain = streams(Streamer("a"), b)
    assert [item async for item in chain.stream(open_either)] == ["b1"]


async def test_the_overall_deadline_bounds_a_stream_before_its_first_item() -> None:
    policy = RetryPolicy(attempt_timeout=5.0, overall_timeout=0.02, attempts_per_provider=2)
    a, b = Streamer("a", hang_before=True), Streamer("b", hang_before=True)
    with pytest.raises(ProviderError) as caught:
        await collect(streams(a, b, policy=policy))
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert b.opened == 0


async def test_concurrent_streams_do_not_share_state() -> None:
    a = Streamer("a", items=["x", "y"])
    chain = streams(a)
    results = await asyncio.gather(*(collect(chain) for _ in range(3)))
    assert results == [["x", "y"]] * 3
    assert (a.opened, a.closed) == (3, 3)
