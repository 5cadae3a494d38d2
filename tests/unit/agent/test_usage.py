"""The usage meter: time to first text, duration, characters and tokens, reported once."""

from __future__ import annotations

from openclaw_voice.agent.usage import AgentUsage, UsageMeter


def test_figures_from_a_fake_clock() -> None:
    ticks = iter([10.0, 10.5, 12.0])
    reported: list[AgentUsage] = []
    meter = UsageMeter("openai", "gpt", 5, reported.append, clock=lambda: next(ticks))
    meter.text("Hello ")  # 10.5: first text
    meter.text("there")  # no clock read: only the first text is timed
    meter.tokens(12, 3)
    usage = meter.report("completed")
    assert reported == [usage]
    assert usage == AgentUsage(
        provider="openai",
        model="gpt",
        guild_id=5,
        outcome="completed",
        duration_seconds=2.0,
        first_token_seconds=0.5,
        characters=11,
        prompt_tokens=12,
        completion_tokens=3,
    )


def test_no_text_and_no_observer() -> None:
    usage = UsageMeter("local", "local", None, None).report("failed")
    assert usage.first_token_seconds is None
    assert usage.characters == 0
    assert usage.outcome == "failed"
