"""Daily budgets per guild, kept in the state database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openclaw_voice.audio.packets import Utterance
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.pipeline.budget import BudgetPolicy, GuildBudget
from openclaw_voice.pipeline.turn import TurnOutcome, TurnRequest
from openclaw_voice.store.state import StateStore

GUILD = 42


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    opened = await StateStore.open(tmp_path)
    yield opened
    await opened.close()


def voice_turn(seconds: float) -> TurnRequest:
    audio = PcmAudio(bytes(int(32_000 * seconds)), 16_000)
    return TurnRequest(GUILD, 1, "alice", utterance=Utterance(1, audio, 0.0, seconds))


async def test_usage_is_recorded_and_budgets_run_out(store: StateStore) -> None:
    budget = GuildBudget(store, GUILD, BudgetPolicy(stt_seconds=3, llm_tokens=1000))
    assert await budget.exhausted() == []
    answered = TurnOutcome("completed", transcript="what time is it", reply="It's noon.")
    await budget.record(voice_turn(2.0), answered, spoken=True)
    usage = await store.usage(GUILD)
    assert usage["stt_seconds"] == 2.0
    assert usage["tts_characters"] == len("It's noon.")
    assert usage["llm_tokens"] == 7  # (15 + 10) characters / 4, rounded up
    assert await budget.exhausted() == []
    await budget.record(voice_turn(1.5), answered, spoken=False)
    assert await budget.exhausted() == ["stt_seconds"]
    assert (await store.usage(GUILD))["tts_characters"] == len("It's noon.")  # not spoken


async def test_no_policy_means_no_limit(store: StateStore) -> None:
    budget = GuildBudget(store, GUILD, BudgetPolicy())
    await budget.record(
        voice_turn(100.0), TurnOutcome("completed", reply="x" * 10_000), spoken=True
    )
    assert await budget.exhausted() == []
