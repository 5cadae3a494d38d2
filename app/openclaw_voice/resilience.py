"""Retries, timeouts and ordered fallback for every provider call, in one place.

Providers make single attempts and raise :class:`ProviderError`; a :class:`FallbackChain`
retries retryable failures with exponential backoff and jitter (honouring the server's
Retry-After), bounds each attempt and the whole call, moves on to the next provider when
one keeps failing (at once after a timeout), and benches a provider for a cool-down when
it failed non-retryably (bad key, refused request) or, with another provider to fall back
to, failed several attempts in a row (an outage: later calls skip it instead of paying its
retries). Cancellation (a barge-in) propagates untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import structlog

from openclaw_voice.errors import ErrorKind, ProviderError, Stage

log = structlog.get_logger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")


class Named(Protocol):
    name: str


P = TypeVar("P", bound=Named)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per provider, backoff, and time bounds (seconds).

    ``attempt_timeout`` bounds one unary call, or the wait for a stream's first item;
    ``stall_timeout`` bounds the gap between later stream items; ``overall_timeout``
    bounds the whole chain until the first result.
    """

    attempt_timeout: float
    overall_timeout: float
    attempts_per_provider: int = 2
    base_delay: float = 0.2
    max_delay: float = 2.0
    stall_timeout: float = 10.0
    cooldown: float = 60.0
    # Consecutive failed attempts (retryable ones: 5xx, timeouts, 429s) after which a
    # provider with a fallback is benched for ``cooldown``: an outage costs each turn its
    # retries only until then. One more failure after the cool-down benches it again.
    failures_to_bench: int = 4


class ProviderHealth:
    """Benched providers until their cool-down, and each one's consecutive failures."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._benched_until: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def healthy(self, name: str) -> bool:
        return self._clock() >= self._benched_until.get(name, 0.0)

    def bench(self, name: str, seconds: float) -> None:
        self._benched_until[name] = self._clock() + seconds

    def failed(self, name: str) -> int:
        """Count a failed attempt; the provider's consecutive failures so far."""
        self._failures[name] = self._failures.get(name, 0) + 1
        return self._failures[name]

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)


@dataclass(frozen=True)
class Attempt:
    """What an observer (metrics) is told about each provider attempt."""

    stage: Stage
    provider: str
    seconds: float
    error: ProviderError | None


Observer = Callable[[Attempt], None]


def _as_provider_error(stage: Stage, provider: str, error: BaseException) -> ProviderError:
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, TimeoutError):
        return ProviderError(stage, ErrorKind.TIMEOUT, provider, "timed out")
    return ProviderError(
        stage, ErrorKind.UNAVAILABLE, provider, f"unexpected {type(error).__name__}: {error}"
    )


# What a provider attempt may fail with; anything else is a bug and propagates.
_FAILURES = (ProviderError, TimeoutError, OSError, ValueError)
# Failures that describe this input, not the provider's health: never benched.
_INPUT_KINDS = frozenset({ErrorKind.EMPTY_INPUT, ErrorKind.EMPTY_RESULT, ErrorKind.INPUT_TOO_LONG})


@dataclass
class _Call:
    """State of one call through the chain (chains are shared by concurrent sessions)."""

    deadline: float
    last_error: ProviderError | None = None


class FallbackChain(Generic[P]):
    """Ordered providers of one kind; first healthy one that answers wins."""

    def __init__(
        self,
        stage: Stage,
        providers: Sequence[P],
        policy: RetryPolicy,
        *,
        health: ProviderHealth | None = None,
        observer: Observer | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.stage = stage
        self.providers = tuple(providers)
        self.policy = policy
        self.health = health or ProviderHealth()
        self._observer = observer
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._sleep = sleep

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(provider.name for provider in self.providers)

    def _candidates(self) -> list[P]:
        healthy = [p for p in self.providers if self.health.healthy(p.name)]
        # With every provider benched, trying the first beats failing without a try.
        return healthy or [self.providers[0]]

    def _observe(self, provider: str, started: float, error: ProviderError | None) -> None:
        if error is None:
            self.health.succeeded(provider)
        if self._observer is not None:
            self._observer(Attempt(self.stage, provider, time.monotonic() - started, error))

    def _backoff(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2**attempt)
        return self._rng.uniform(0, ceiling)  # full jitter

    def _after_failure(self, provider: str, error: ProviderError) -> None:
        log.warning(
            "provider attempt failed",
            context={"stage": self.stage.name, "provider": provider, "code": error.code},
            error=error.detail,
        )
        if error.kind in _INPUT_KINDS:
            return
        failures = self.health.failed(provider)
        if not error.retryable:
            self.health.bench(provider, self.policy.cooldown)
        elif failures >= self.policy.failures_to_bench and len(self.providers) > 1:
            self.health.bench(provider, self.policy.cooldown)
            log.warning(
                "provider benched after consecutive failures; using the next one",
                context={
                    "stage": self.stage.name,
                    "provider": provider,
                    "failures": failures,
                    "cooldown_seconds": self.policy.cooldown,
                },
            )

    async def _plan(self, call: _Call) -> AsyncGenerator[P, None]:
        """Providers to try, in order and with retries, sleeping the backoff in between.

        A provider is not retried when it timed out and another one follows: the retry
        would use up the time the next provider needs (a hung provider stays hung).
        """
        candidates = self._candidates()
        for provider in candidates:
            for attempt in range(self.policy.attempts_per_provider):
                yield provider
                error = call.last_error
                if error is None or not error.retryable or not self.health.healthy(provider.name):
                    break  # done, hopeless for this input, or benched just now: next provider
                if error.kind is ErrorKind.TIMEOUT and provider is not candidates[-1]:
                    break
                if attempt + 1 < self.policy.attempts_per_provider:
                    delay = self._backoff(attempt, error)
                    if time.monotonic() + delay >= call.deadline:
                        break  # the server asks for longer than we have: next provider
                    await self._sleep(delay)

    def _failed(self, call: _Call, provider: str, started: float, raw: BaseException) -> None:
        call.last_error = _as_provider_error(self.stage, provider, raw)
        self._observe(provider, started, call.last_error)
        self._after_failure(provider, call.last_error)

    async def call(self, operation: Callable[[P], Awaitable[T]]) -> T:
        """Run a unary operation (e.g. transcribe) through the chain."""
        call = _Call(time.monotonic() + self.policy.overall_timeout)
        async with contextlib.aclosing(self._plan(call)) as plan:
            async for provider in plan:
                started = time.monotonic()
                remaining = call.deadline - started
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(min(self.policy.attempt_timeout, remaining)):
                        result = await operation(provider)
                except _FAILURES as raw:
                    self._failed(call, provider.name, started, raw)
                    if (
                        call.last_error is not None
                        and call.last_error.kind is ErrorKind.EMPTY_INPUT
                    ):
                        break  # no input: no other provider can do better
                    continue
                call.last_error = None
                self._observe(provider.name, started, None)
                return result
        raise self._final_error(call)

    async def stream(
        self, open_stream: Callable[[P], AsyncIterator[ItemT]]
    ) -> AsyncGenerator[ItemT, None]:
        """Stream from the first provider that produces a first item in time.

        Fallback happens only before the first item: once audio or text has been passed on,
        switching providers would repeat or garble it, so a later failure is raised.
        """
        call = _Call(time.monotonic() + self.policy.overall_timeout)
        async with contextlib.aclosing(self._plan(call)) as plan:
            async for provider in plan:
                started = time.monotonic()
                remaining = call.deadline - started
                if remaining <= 0:
                    break
                iterator = aiter(open_stream(provider))
                try:
                    async with asyncio.timeout(min(self.policy.attempt_timeout, remaining)):
                        first = await anext(iterator)
                except StopAsyncIteration:
                    empty = ProviderError(
                        self.stage, ErrorKind.EMPTY_RESULT, provider.name, "empty"
                    )
                    self._failed(call, provider.name, started, empty)
                except _FAILURES as raw:
                    await _close(iterator)
                    self._failed(call, provider.name, started, raw)
                except asyncio.CancelledError:
                    await _close(iterator)
                    raise
                else:
                    call.last_error = None
                    self._observe(provider.name, started, None)
                    # aclosing: a consumer that stops early or is cancelled closes the
                    # provider's stream now, not whenever the generator is collected.
                    rest = self._rest(provider.name, iterator, first)
                    async with contextlib.aclosing(rest):
                        async for item in rest:
                            yield item
                    return
        raise self._final_error(call)

    async def _rest(
        self, provider: str, iterator: AsyncIterator[ItemT], first: ItemT
    ) -> AsyncGenerator[ItemT, None]:
        try:
            yield first
            while True:
                try:
                    async with asyncio.timeout(self.policy.stall_timeout):
                        item = await anext(iterator)
                except StopAsyncIteration:
                    return
                except _FAILURES as raw:
                    error = _as_provider_error(self.stage, provider, raw)
                    self._after_failure(provider, error)
                    raise error from raw
                yield item
        finally:
            await _close(iterator)

    def _final_error(self, call: _Call) -> ProviderError:
        if call.last_error is not None:
            return call.last_error
        return ProviderError(
            self.stage, ErrorKind.TIMEOUT, ",".join(self.names), "no time left for any provider"
        )


async def _close(iterator: AsyncIterator[object]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
