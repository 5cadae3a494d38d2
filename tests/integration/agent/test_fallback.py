"""The agent chain from settings: gateway failures and slowness fall back to the local agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from openclaw_voice.agent.base import Agent, AgentSession, AgentTurn
from openclaw_voice.agent.registry import build_agent_chain, close_agents, reply
from openclaw_voice.agent.usage import AgentUsage
from openclaw_voice.errors import ErrorKind
from openclaw_voice.resilience import Attempt, FallbackChain
from tests.fakes.openclaw_gateway import FakeOpenClawGateway
from tests.integration.agent.conftest import ALICE, settings_for
from tests.integration.agent.streams import WAIT, collect, failure

HELLO = AgentTurn(text="hello there", user_id=1, display_name="Alice")


@pytest.fixture
def attempts() -> list[Attempt]:
    return []


@pytest.fixture
async def chain(
    gateway: FakeOpenClawGateway, attempts: list[Attempt], usages: list[AgentUsage]
) -> AsyncIterator[FallbackChain[Agent]]:
    # 1 s: long enough for a cold SDK client on a loaded CI machine, short enough to test.
    settings = settings_for(gateway, AGENT_FIRST_TOKEN_TIMEOUT_SECONDS="1.0", PROVIDER_ATTEMPTS="1")
    built = build_agent_chain(settings, observer=attempts.append, usage_observer=usages.append)
    yield built
    await close_agents(built)


async def test_the_gateway_answers_when_healthy(
    chain: FallbackChain[Agent], gateway: FakeOpenClawGateway, session: AgentSession
) -> None:
    gateway.reply = "From the gateway."
    assert "".join(await collect(reply(chain, session, HELLO))) == "From the gateway."
    assert chain.names == ("openclaw", "local")


async def test_a_gateway_error_falls_back_to_the_local_agent(
    chain: FallbackChain[Agent],
    gateway: FakeOpenClawGateway,
    session: AgentSession,
    attempts: list[Attempt],
) -> None:
    gateway.controls.fail(500)
    answer = "".join(await collect(reply(chain, session, HELLO)))
    assert answer == "Hello, Alice! I'm OpenClaw, running offline."
    assert [(a.provider, a.error and a.error.kind) for a in attempts] == [
        ("openclaw", ErrorKind.UNAVAILABLE),
        ("local", None),
    ]


async def test_a_slow_first_token_falls_back_within_the_attempt_timeout(
    chain: FallbackChain[Agent],
    gateway: FakeOpenClawGateway,
    session: AgentSession,
    attempts: list[Attempt],
) -> None:
    gateway.hold_after = 0  # headers sent, then nothing: the agent is "thinking"
    answer = "".join(await collect(reply(chain, session, HELLO)))
    assert answer.startswith("Hello, Alice!")
    assert attempts[0].provider == "openclaw"
    assert attempts[0].error is not None
    assert attempts[0].error.kind is ErrorKind.TIMEOUT
    assert attempts[0].seconds == pytest.approx(1.0, abs=0.5)
    assert gateway.held.is_set()  # the gateway had the request and was holding it
    gateway.release.set()
    await asyncio.wait_for(gateway.disconnected.wait(), WAIT)  # and we had hung up


async def test_a_gateway_slow_to_respond_at_all_falls_back_too(
    chain: FallbackChain[Agent],
    gateway: FakeOpenClawGateway,
    session: AgentSession,
    attempts: list[Attempt],
) -> None:
    gateway.controls.latency = 2.0  # no response headers within the 1 s attempt timeout
    answer = "".join(await collect(reply(chain, session, HELLO)))
    assert answer.startswith("Hello, Alice!")
    assert attempts[0].error is not None
    assert attempts[0].error.kind is ErrorKind.TIMEOUT


async def test_a_disabled_endpoint_benches_the_gateway(
    chain: FallbackChain[Agent],
    gateway: FakeOpenClawGateway,
    session: AgentSession,
    attempts: list[Attempt],
) -> None:
    gateway.enabled = False
    first = "".join(await collect(reply(chain, session, HELLO)))
    second = "".join(await collect(reply(chain, session, HELLO)))
    assert first == second
    assert len(gateway.requests) == 1  # benched after NOT_CONFIGURED: not asked again
    assert attempts[0].error is not None
    assert attempts[0].error.kind is ErrorKind.NOT_CONFIGURED


async def test_a_retryable_failure_is_retried_on_the_gateway(
    gateway: FakeOpenClawGateway, session: AgentSession
) -> None:
    settings = settings_for(gateway, PROVIDER_ATTEMPTS="2", AGENT_FIRST_TOKEN_TIMEOUT_SECONDS="2")
    chain = build_agent_chain(settings)
    gateway.controls.fail(429, retry_after=0)
    gateway.reply = "Second time lucky."
    try:
        answer = "".join(await collect(reply(chain, session, HELLO)))
    finally:
        await close_agents(chain)
    assert answer == "Second time lucky."
    assert len(gateway.requests) == 2


async def test_a_failure_after_the_first_delta_is_raised_not_hidden(
    chain: FallbackChain[Agent], gateway: FakeOpenClawGateway, session: AgentSession
) -> None:
    gateway.reply = "Half an answer and then"
    gateway.include_done = False
    received, error = await failure(reply(chain, session, ALICE))
    assert "".join(received) == "Half an answer and then"
    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_cancelling_the_turn_mid_stream_closes_the_http_stream(
    chain: FallbackChain[Agent],
    gateway: FakeOpenClawGateway,
    session: AgentSession,
    usages: list[AgentUsage],
) -> None:
    gateway.reply = " ".join(["token"] * 500)
    gateway.controls.chunk_delay = 0.01
    first_delta = asyncio.Event()

    async def speak() -> None:
        async for _ in reply(chain, session, ALICE):
            first_delta.set()

    task = asyncio.create_task(speak())
    await asyncio.wait_for(first_delta.wait(), WAIT)
    task.cancel()  # a barge-in cancels the turn
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(gateway.disconnected.wait(), WAIT)
    assert not gateway.completed.is_set()
    assert usages[-1].provider == "openclaw"
    assert usages[-1].outcome == "cancelled"


async def test_local_only_chain_answers_offline(session: AgentSession) -> None:
    chain = build_agent_chain(settings_for(AGENT_PROVIDER="local"))
    try:
        deltas = await collect(
            reply(chain, session, AgentTurn("repeat after me red lorry", 1, "A"))
        )
    finally:
        await close_agents(chain)
    assert deltas == ["red ", "lorry."]
