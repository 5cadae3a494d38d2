"""Provider attempts land in the right metric families."""

from __future__ import annotations

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.provider_metrics import provider_observer
from openclaw_voice.resilience import Attempt


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
