"""What one agent reply cost and how fast it came, reported to an observer (metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["completed", "failed", "cancelled"]


@dataclass(frozen=True)
class AgentUsage:
    """One reply of one provider; token counts are None when the server did not report them.

    ``first_token_seconds`` runs from the request to the first text passed on (None if none
    was); ``duration_seconds`` to the end of the reply, its failure or its cancellation.
    """

    provider: str
    model: str
    guild_id: int | None
    outcome: Outcome
    duration_seconds: float
    first_token_seconds: float | None
    characters: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


UsageObserver = Callable[[AgentUsage], None]


class UsageMeter:
    """Collects one reply's figures while it streams; :meth:`report` sends them once."""

    def __init__(
        self,
        provider: str,
        model: str,
        guild_id: int | None,
        observer: UsageObserver | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.model = model
        self.guild_id = guild_id
        self._observer = observer
        self._clock = clock
        self._started = clock()
        self._first: float | None = None
        self.characters = 0
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None

    def text(self, delta: str) -> None:
        if self._first is None:
            self._first = self._clock() - self._started
        self.characters += len(delta)

    def tokens(self, prompt: int | None, completion: int | None) -> None:
        self.prompt_tokens = prompt
        self.completion_tokens = completion

    def report(self, outcome: Outcome) -> AgentUsage:
        usage = AgentUsage(
            provider=self.provider,
            model=self.model,
            guild_id=self.guild_id,
            outcome=outcome,
            duration_seconds=self._clock() - self._started,
            first_token_seconds=self._first,
            characters=self.characters,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
        if self._observer is not None:
            self._observer(usage)
        return usage
