"""Provider attempts land in the right metric families."""

from __future__ import annotations

import pytest

from openclaw_voice.agent.usage import AgentUsage
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.provider_metrics import (
    agent_usage_recorder,
    provider_observer,
    tts_stats_recorder,
)
from openclaw_voice.resilience import Attempt
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.registry import SynthesisStats


def value(metrics: Metrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


@pytest.mark.parametrize(
    ("stage", "prefix", "latency"),
    [
        (Stage.STT, "stt", "stt_request_duration_seconds_count"),
        (Stage.TTS, "tts", "tts_time_to_first_byte_seconds_count"),
        (Stage.AGENT, "agent", "agent_time_to_first_token_seconds_count"),
    ],
)
def test_success_and_failure_are_counted(stage: Stage, prefix: str, latency: str) -> None:
    metrics = Metrics()
    observe = provider_observer(metrics)
    observe(Attempt(stage, "openai", 0.2, None))
    error = ProviderError(stage, ErrorKind.RATE_LIMITED, "openai", "slow down")
    observe(Attempt(stage, "openai", 0.1, error))
    requests = f"{prefix}_request_total"
    assert value(metrics, requests, provider="openai", status="ok") == 1
    assert value(metrics, requests, provider="openai", status="error") == 1
    errors = f"{prefix}_error_total"
    assert value(metrics, errors, provider="openai", error_type="rate_limited") == 1
    assert value(metrics, latency, provider="openai") >= 1


def test_agent_usage_and_speech_stats_are_recorded() -> None:
    metrics = Metrics()
    record = agent_usage_recorder(metrics)
    record(AgentUsage("openclaw", "openclaw/main", 7, "completed", 1.5, 0.3, 40, 120, 30))
    record(AgentUsage("local", "local", None, "completed", 0.1, 0.0, 10))
    assert value(metrics, "agent_tokens_total", provider="openclaw", kind="prompt") == 120
    assert value(metrics, "agent_tokens_total", provider="openclaw", kind="completion") == 30
    assert (
        value(metrics, "guild_usage_total", guild_id="7", provider="openclaw", kind="llm_tokens")
        == 150
    )
    assert value(metrics, "agent_request_duration_seconds_count", provider="local") == 1
    tts = tts_stats_recorder(metrics)
    tts(
        SpeechRequest("hello there", guild_id=7),
        SynthesisStats(11, "elevenlabs", 4800, 0.1, 0.05, 0.2, True),
    )
    assert value(metrics, "tts_characters_total", provider="elevenlabs") == 11
    assert value(metrics, "tts_bytes_generated_total", provider="elevenlabs") == 4800
    assert (
        value(
            metrics, "guild_usage_total", guild_id="7", provider="elevenlabs", kind="tts_characters"
        )
        == 11
    )
