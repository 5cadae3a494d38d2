"""An append-only log of what the fake saw, with event-based waiting for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Predicate = Callable[["Recorded"], bool]


@dataclass(frozen=True)
class Recorded:
    """One observation: ``kind`` names it (``"interaction_response"``, ``"rest"`` ...)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Keeps every :class:`Recorded` and wakes waiters whose predicate matches."""

    def __init__(self) -> None:
        self.events: list[Recorded] = []
        self._waiters: list[tuple[str, Predicate | None, asyncio.Future[Recorded]]] = []

    def record(self, kind: str, **data: Any) -> Recorded:
        event = Recorded(kind, data)
        self.events.append(event)
        remaining = []
        for waiter in self._waiters:
            wanted, predicate, future = waiter
            if future.done():
                continue
            if wanted == kind and (predicate is None or predicate(event)):
                future.set_result(event)
            else:
                remaining.append(waiter)
        self._waiters = remaining
        return event

    def of_kind(self, kind: str) -> list[Recorded]:
        return [event for event in self.events if event.kind == kind]

    async def wait_for(
        self,
        kind: str,
        predicate: Predicate | None = None,
        *,
        within: float = 10.0,
        since: int = 0,
    ) -> Recorded:
        """The first matching event, past (from index ``since`` of ``events``) or future;
        ``TimeoutError`` after ``within`` seconds."""
        for event in self.events[since:]:
            if event.kind == kind and (predicate is None or predicate(event)):
                return event
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._waiters.append((kind, predicate, future))
        try:
            return await asyncio.wait_for(future, within)
        finally:
            future.cancel()
