"""Fixtures for the agent providers against the local fakes (real openai SDK, 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.agent.openai import OpenAIAgent
from openclaw_voice.agent.openclaw import OpenClawAgent
from openclaw_voice.agent.usage import AgentUsage
from openclaw_voice.config import Settings, load_settings
from openclaw_voice.secret import Secret
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.openclaw_gateway import TOKEN, FakeOpenClawGateway

DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
ALICE = AgentTurn(text="What's the weather like?", user_id=111111111111111111, display_name="Alice")


def settings_for(gateway: FakeOpenClawGateway | None = None, **variables: str) -> Settings:
    environ = {"DISCORD_TOKEN": DISCORD_TOKEN, "AGENT_PROVIDER": "openclaw,local"}
    if gateway is not None:
        environ["OPENCLAW_GATEWAY_URL"] = gateway.base_url
        environ["OPENCLAW_GATEWAY_TOKEN"] = gateway.api_key
    environ.update(variables)
    return load_settings(environ)


@pytest.fixture
def session() -> AgentSession:
    return AgentSession(session_key="discord-voice:222222222222222222", guild_id=222222222222222222)


@pytest.fixture
def usages() -> list[AgentUsage]:
    return []


@pytest.fixture
async def gateway() -> AsyncIterator[FakeOpenClawGateway]:
    async with FakeOpenClawGateway(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def openai_api() -> AsyncIterator[FakeOpenAIChat]:
    async with FakeOpenAIChat() as fake:
        yield fake


@pytest.fixture
async def openclaw_agent(
    gateway: FakeOpenClawGateway, usages: list[AgentUsage]
) -> AsyncIterator[OpenClawAgent]:
    agent = OpenClawAgent(
        gateway_url=gateway.base_url,
        token=Secret(TOKEN),
        agent_id="main",
        wake_name="OpenClaw",
        usage_observer=usages.append,
    )
    yield agent
    await agent.aclose()


@pytest.fixture
async def openai_agent(
    openai_api: FakeOpenAIChat, usages: list[AgentUsage]
) -> AsyncIterator[OpenAIAgent]:
    agent = OpenAIAgent(
        base_url=openai_api.api_base,
        api_key=Secret(openai_api.api_key),
        model="gpt-4o-mini",
        wake_name="OpenClaw",
        usage_observer=usages.append,
    )
    yield agent
    await agent.aclose()
