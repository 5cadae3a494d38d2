"""The agent chain from settings: providers in order, time bounds, missing configuration."""

from __future__ import annotations

import dataclasses

import pytest

from openclaw_voice.agent.local import LocalAgent
from openclaw_voice.agent.openai import OpenAIAgent
from openclaw_voice.agent.openclaw import (
    OpenClawAgent,
    gateway_api_base,
    scoped_session_key,
)
from openclaw_voice.agent.registry import agent_policy, build_agent_chain, close_agents
from openclaw_voice.config import Settings, load_settings
from openclaw_voice.errors import ErrorKind, ProviderError, Stage

DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"


def settings(**variables: str) -> Settings:
    return load_settings({"DISCORD_TOKEN": DISCORD_TOKEN, **variables})


ALL = settings(
    AGENT_PROVIDER="openclaw,openai,local",
    OPENCLAW_GATEWAY_URL="http://127.0.0.1:9/",
    OPENCLAW_GATEWAY_TOKEN="gw",
    OPENAI_API_KEY="sk-x",
    OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    OPENCLAW_AGENT_ID="helper",
    AGENT_FIRST_TOKEN_TIMEOUT_SECONDS="4",
    PROVIDER_ATTEMPTS="3",
    PROVIDER_COOLDOWN_SECONDS="30",
)


async def test_providers_in_the_configured_order() -> None:
    chain = build_agent_chain(ALL)
    try:
        assert chain.stage is Stage.AGENT
        assert chain.names == ("openclaw", "openai", "local")
        openclaw, openai_agent, local = chain.providers
        assert isinstance(openclaw, OpenClawAgent)
        assert openclaw.model == "openclaw/helper"
        assert isinstance(openai_agent, OpenAIAgent)
        assert openai_agent.model == "gpt-4o-mini"
        assert isinstance(local, LocalAgent)
    finally:
        await close_agents(chain)


def test_policy_bounds_the_first_token_and_the_whole_chain() -> None:
    policy = agent_policy(ALL)
    assert policy.attempt_timeout == 4
    assert policy.overall_timeout == 8
    assert policy.attempts_per_provider == 3
    assert policy.cooldown == 30


def test_the_development_default_is_the_local_agent() -> None:
    chain = build_agent_chain(settings())
    assert chain.names == ("local",)


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        build_agent_chain(dataclasses.replace(ALL, agent_provider=("local", "bogus")))


def test_openclaw_without_a_gateway_is_not_configured() -> None:
    broken = dataclasses.replace(ALL, openclaw_gateway_url=None)
    with pytest.raises(ProviderError) as caught:
        build_agent_chain(broken)
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert "OPENCLAW_GATEWAY_URL" in caught.value.detail


def test_openai_without_a_key_is_not_configured() -> None:
    broken = dataclasses.replace(ALL, provider_keys={}, agent_provider=("openai",))
    with pytest.raises(ProviderError) as caught:
        build_agent_chain(broken)
    assert "OPENAI_API_KEY" in caught.value.detail


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://gw:18789", "http://gw:18789/v1"),
        ("http://gw:18789/", "http://gw:18789/v1"),
        ("https://gw.example/openclaw/v1/", "https://gw.example/openclaw/v1"),
    ],
)
def test_gateway_api_base(url: str, base: str) -> None:
    assert gateway_api_base(url) == base


def test_session_keys_are_scoped_to_the_agent() -> None:
    assert scoped_session_key("Helper", "discord:1") == "agent:helper:discord:1"
    assert scoped_session_key("main", "agent:beta:x") == "agent:beta:x"
