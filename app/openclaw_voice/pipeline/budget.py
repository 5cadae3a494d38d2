"""Per-guild daily budgets for paid speech and agent use.

Usage is kept per guild and UTC day in the state database: seconds of speech sent to
recognition, characters spoken, and agent tokens (estimated as one token per four
characters of question and answer, the usual rule of thumb, when a provider does not
report them per turn). Once a budget is used up the guild still gets answers, in text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openclaw_voice.pipeline.turn import TurnOutcome, TurnRequest
from openclaw_voice.store.state import StateStore, StoreError, UsageKind

CHARACTERS_PER_TOKEN = 4


@dataclass(frozen=True)
class BudgetPolicy:
    """Daily limits per guild; 0 means no limit."""

    stt_seconds: float = 0.0
    tts_characters: int = 0
    llm_tokens: int = 0

    @property
    def limited(self) -> bool:
        return bool(self.stt_seconds or self.tts_characters or self.llm_tokens)


class GuildBudget:
    """Reads and records one guild's usage against the policy."""

    def __init__(self, store: StateStore, guild_id: int, policy: BudgetPolicy) -> None:
        self.store = store
        self.guild_id = guild_id
        self.policy = policy

    async def exhausted(self) -> list[str]:
        """The budgets used up today (empty: speak freely). A store error never blocks."""
        if not self.policy.limited:
            return []
        try:
            used = await self.store.usage(self.guild_id)
        except StoreError:
            return []
        limits = {
            "stt_seconds": self.policy.stt_seconds,
            "tts_characters": self.policy.tts_characters,
            "llm_tokens": self.policy.llm_tokens,
        }
        return [kind for kind, limit in limits.items() if limit and used.get(kind, 0) >= limit]

    async def record(self, request: TurnRequest, outcome: TurnOutcome, *, spoken: bool) -> None:
        asked = outcome.transcript if request.utterance is not None else request.text
        usage: list[tuple[UsageKind, float]] = []
        if request.utterance is not None:
            usage.append(("stt_seconds", request.utterance.audio.duration_seconds))
        if spoken and outcome.reply:
            usage.append(("tts_characters", float(len(outcome.reply))))
        if outcome.reply:
            characters = len(asked or "") + len(outcome.reply)
            usage.append(("llm_tokens", float(math.ceil(characters / CHARACTERS_PER_TOKEN))))
        try:
            for kind, amount in usage:
                await self.store.add_usage(self.guild_id, kind, amount)
        except StoreError:
            pass  # counted and logged by the store; a lost usage row must not end the turn
