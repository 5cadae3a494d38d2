"""Turns provider attempts reported by fallback chains into Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable

from openclaw_voice.agent.usage import AgentUsage
from openclaw_voice.errors import ErrorKind, Stage
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.resilience import Attempt, Observer
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.registry import SynthesisStats


def provider_observer(metrics: Metrics) -> Observer:
    """An observer for FallbackChain: one request count per attempt, errors by type.

    For the streaming chains (TTS, agent) an attempt's duration is the time to the first
    audio byte or token, which is what the latency of a voice turn depends on.
    """

    def observe(attempt: Attempt) -> None:
        if attempt.error is not None and attempt.error.kind is ErrorKind.EMPTY_INPUT:
            return  # nothing was sent: not a request
        status = "ok" if attempt.error is None else "error"
        provider = attempt.provider
        if attempt.stage is Stage.STT:
            metrics.stt_request_total.labels(provider=provider, status=status).inc()
            metrics.stt_request_duration_seconds.labels(provider=provider).observe(attempt.seconds)
            errors = metrics.stt_error_total
        elif attempt.stage is Stage.TTS:
            metrics.tts_request_total.labels(provider=provider, status=status).inc()
            if attempt.error is None:
                metrics.tts_time_to_first_byte_seconds.labels(provider=provider).observe(
                    attempt.seconds
                )
            errors = metrics.tts_error_total
        else:
            metrics.agent_request_total.labels(provider=provider, status=status).inc()
            if attempt.error is None:
                metrics.agent_time_to_first_token_seconds.labels(provider=provider).observe(
                    attempt.seconds
                )
            errors = metrics.agent_error_total
        if attempt.error is not None:
            errors.labels(provider=provider, error_type=attempt.error.kind.name.lower()).inc()

    return observe


def tts_stats_recorder(metrics: Metrics) -> Callable[[SpeechRequest, SynthesisStats], None]:
    """Records each finished speech stream: duration, bytes, characters, guild usage."""

    def record(request: SpeechRequest, stats: SynthesisStats) -> None:
        provider = stats.provider or "none"
        metrics.tts_request_duration_seconds.labels(provider=provider).observe(stats.seconds)
        metrics.tts_bytes_generated_total.labels(provider=provider).inc(stats.bytes)
        metrics.tts_characters_total.labels(provider=provider).inc(stats.characters)
        if request.guild_id is not None:
            metrics.guild_usage_total.labels(
                guild_id=str(request.guild_id), provider=provider, kind="tts_characters"
            ).inc(stats.characters)

    return record


def agent_usage_recorder(metrics: Metrics) -> Callable[[AgentUsage], None]:
    """Records each agent reply: duration, tokens by kind, and the guild's LLM usage."""

    def record(usage: AgentUsage) -> None:
        metrics.agent_request_duration_seconds.labels(provider=usage.provider).observe(
            usage.duration_seconds
        )
        tokens = 0
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        ):
            if count is not None:
                metrics.agent_tokens_total.labels(provider=usage.provider, kind=kind).inc(count)
                tokens += count
        if usage.guild_id is not None and tokens:
            metrics.guild_usage_total.labels(
                guild_id=str(usage.guild_id), provider=usage.provider, kind="llm_tokens"
            ).inc(tokens)

    return record
