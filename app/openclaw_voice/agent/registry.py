"""Builds the agent fallback chain named by ``AGENT_PROVIDER`` and streams replies through it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from openclaw_voice.agent.base import Agent, AgentSession, AgentTurn
from openclaw_voice.agent.local import LocalAgent
from openclaw_voice.agent.openai import OpenAIAgent
from openclaw_voice.agent.openclaw import OpenClawAgent
from openclaw_voice.agent.usage import UsageObserver
from openclaw_voice.config import Settings
from openclaw_voice.errors import Stage
from openclaw_voice.resilience import FallbackChain, Observer, RetryPolicy


def _local(settings: Settings, usage_observer: UsageObserver | None) -> Agent:
    return LocalAgent(wake_name=settings.speech.wake_name, usage_observer=usage_observer)


def _openclaw(settings: Settings, usage_observer: UsageObserver | None) -> Agent:
    return OpenClawAgent.from_settings(settings, usage_observer=usage_observer)


def _openai(settings: Settings, usage_observer: UsageObserver | None) -> Agent:
    return OpenAIAgent.from_settings(settings, usage_observer=usage_observer)


BUILDERS: Mapping[str, Callable[[Settings, UsageObserver | None], Agent]] = {
    "openclaw": _openclaw,
    "openai": _openai,
    "local": _local,
}


def agent_policy(settings: Settings) -> RetryPolicy:
    """Time bounds from settings: the first token within the timeout, the chain within twice it."""
    first_token = settings.speech.agent_first_token_timeout_seconds
    return RetryPolicy(
        attempt_timeout=first_token,
        overall_timeout=2 * first_token,
        attempts_per_provider=settings.speech.provider_attempts,
        cooldown=settings.speech.provider_cooldown_seconds,
    )


def build_agent_chain(
    settings: Settings,
    *,
    observer: Observer | None = None,
    usage_observer: UsageObserver | None = None,
) -> FallbackChain[Agent]:
    """One agent per name of ``settings.agent_provider``, in order; unknown names are a bug."""
    unknown = [name for name in settings.agent_provider if name not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown agent provider(s): {', '.join(unknown)}")
    agents = [BUILDERS[name](settings, usage_observer) for name in settings.agent_provider]
    return FallbackChain(Stage.AGENT, agents, agent_policy(settings), observer=observer)


def reply(
    chain: FallbackChain[Agent], session: AgentSession, turn: AgentTurn
) -> AsyncIterator[str]:
    """The first provider's reply that starts in time, as text deltas (see FallbackChain.stream)."""
    return chain.stream(lambda agent: agent.reply(session, turn))


async def close_agents(chain: FallbackChain[Agent]) -> None:
    """Close every provider's HTTP client (at shutdown)."""
    for agent in chain.providers:
        await agent.aclose()
