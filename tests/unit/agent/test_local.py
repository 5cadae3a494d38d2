"""The offline responder: its few honest skills, streamed word by word, deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import pytest

from openclaw_voice.agent.base import AgentSession, AgentTurn, Message
from openclaw_voice.agent.local import LocalAgent
from openclaw_voice.agent.usage import AgentUsage

NOW = datetime(2026, 11, 27, 20, 5, 0, tzinfo=UTC)  # a Friday


def frozen(zone: tzinfo) -> datetime:
    return NOW.astimezone(zone)


def ask(text: str, *, agent: LocalAgent | None = None, session: AgentSession | None = None) -> str:
    agent = agent or LocalAgent(wake_name="Nova", now=frozen)
    return agent.answer(session or AgentSession("s"), AgentTurn(text, 7, "Alice"))


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("What time is it?", "It's 8:05 PM UTC."),
        ("Nova, tell me the time", "It's 8:05 PM UTC."),
        ("what's the date", "Today is Friday, November 27, 2026."),
        ("What day is it today?", "Today is Friday, November 27, 2026."),
        ("what time and what day is it", "It's 8:05 PM UTC on Friday, November 27, 2026."),
        ("Hello!", "Hello, Alice! I'm Nova, running offline."),
        ("hey Nova", "Hello, Alice! I'm Nova, running offline."),
        ("thanks a lot", "You're welcome."),
        ("repeat after me: the quick brown fox", "the quick brown fox."),
        ("Repeat after me, what time is it?", "what time is it?"),
        ("repeat after me", "Say repeat after me, then the words you want me to say."),
        ("", "I didn't hear anything."),
    ],
)
def test_phrases(text: str, answer: str) -> None:
    assert ask(text) == answer


@pytest.mark.parametrize("text", ["What can you do?", "who are you", "are you an AI", "help"])
def test_it_explains_honestly_that_it_is_offline(text: str) -> None:
    answer = ask(text)
    assert answer.startswith("I'm Nova. I'm running offline, without a language model")
    assert "can't answer questions" in answer
    assert "time and the date" in answer


def test_anything_else_is_echoed_with_the_reason_once() -> None:
    first = ask("What is the capital of France")
    assert first == (
        "You said: What is the capital of France. I'm running offline, so I can only tell "
        "the time and date, say hello, and repeat after you."
    )
    later = AgentSession("s")
    later.history += [Message("user", "hi", name="Alice"), Message("assistant", "Hello.")]
    assert ask("Tell me a joke", session=later) == "You said: Tell me a joke."


def test_a_configured_zone_is_used() -> None:
    agent = LocalAgent(wake_name="Nova", timezone="Europe/Berlin", now=frozen)
    assert ask("what time is it", agent=agent) == "It's 9:05 PM CET."


@pytest.mark.parametrize(
    ("hour", "spoken"), [(0, "12:05 AM"), (9, "9:05 AM"), (12, "12:05 PM"), (23, "11:05 PM")]
)
def test_twelve_hour_clock(hour: int, spoken: str) -> None:
    moment = NOW.replace(hour=hour)
    agent = LocalAgent(now=moment.astimezone)
    assert ask("what time is it", agent=agent) == f"It's {spoken} UTC."


def test_the_real_clock_is_the_default() -> None:
    assert (
        LocalAgent()
        .answer(AgentSession("s"), AgentTurn("the date?", 1, "A"))
        .startswith("Today is ")
    )


async def test_reply_streams_word_by_word_and_reports_usage() -> None:
    usages: list[AgentUsage] = []
    agent = LocalAgent(wake_name="Nova", now=frozen, usage_observer=usages.append)
    session = AgentSession("s", guild_id=9)
    deltas = [d async for d in agent.reply(session, AgentTurn("what time is it", 1, "A"))]
    assert deltas == ["It's ", "8:05 ", "PM ", "UTC."]
    [usage] = usages
    assert usage.provider == "local"
    assert usage.guild_id == 9
    assert usage.outcome == "completed"
    assert usage.characters == len("It's 8:05 PM UTC.")
    assert usage.prompt_tokens is None
    await agent.aclose()


async def test_closing_a_reply_early_reports_it_cancelled() -> None:
    usages: list[AgentUsage] = []
    agent = LocalAgent(now=frozen, usage_observer=usages.append)
    replies = agent.reply(AgentSession("s"), AgentTurn("repeat after me one two three", 1, "A"))
    assert await anext(replies) == "one "
    await replies.aclose()
    assert usages[0].outcome == "cancelled"
    assert usages[0].characters == 4


async def test_the_history_is_not_modified() -> None:
    session = AgentSession("s")
    [_ async for _ in LocalAgent().reply(session, AgentTurn("hello", 1, "A"))]
    assert session.history == []
