"""The openai agent through the real openai SDK against the fake OpenAI chat completions API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from openclaw_voice.agent.base import AgentSession, Message
from openclaw_voice.agent.openai import OpenAIAgent
from openclaw_voice.agent.usage import AgentUsage
from openclaw_voice.errors import ErrorKind
from openclaw_voice.secret import Secret
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.integration.agent.conftest import ALICE, settings_for
from tests.integration.agent.streams import WAIT, collect, failure


async def test_streams_deltas_and_records_token_usage(
    openai_agent: OpenAIAgent,
    openai_api: FakeOpenAIChat,
    session: AgentSession,
    usages: list[AgentUsage],
) -> None:
    openai_api.reply = "It is sunny."
    assert await collect(openai_agent.reply(session, ALICE)) == ["It ", "is ", "sunny."]
    [usage] = usages
    assert (usage.prompt_tokens, usage.completion_tokens) == (42, 9)
    assert usage.provider == "openai"
    assert usage.model == "gpt-4o-mini"


async def test_first_delta_arrives_before_the_answer_is_complete(
    openai_agent: OpenAIAgent, openai_api: FakeOpenAIChat, session: AgentSession
) -> None:
    openai_api.reply = "First then the rest."
    openai_api.hold_after = 1
    replies = openai_agent.reply(session, ALICE)
    assert await asyncio.wait_for(anext(replies), WAIT) == "First "
    await asyncio.wait_for(openai_api.held.wait(), WAIT)
    assert not openai_api.completed.is_set()
    openai_api.release.set()
    assert await collect(replies) == ["then ", "the ", "rest."]


async def test_request_uses_the_model_prompt_and_names_without_a_user_field(
    openai_agent: OpenAIAgent, openai_api: FakeOpenAIChat
) -> None:
    session = AgentSession(session_key="s")
    session.history.append(Message("user", "Hi", name="Bob"))
    session.history.append(Message("assistant", "Hello Bob."))
    await collect(openai_agent.reply(session, ALICE))
    request = openai_api.requests[-1]
    assert request.headers["Authorization"] == "Bearer sk-test-key"
    assert "x-openclaw-session-key" not in request.headers
    body = json.loads(request.body)
    assert body["model"] == "gpt-4o-mini"
    assert "user" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    system = body["messages"][0]["content"]
    assert "no markdown" in system
    assert "Bob, Alice" in system
    assert body["messages"][1] == {"role": "user", "content": "Bob: Hi", "name": "Bob"}


async def test_an_unknown_model_is_not_configured(
    openai_agent: OpenAIAgent, openai_api: FakeOpenAIChat, session: AgentSession
) -> None:
    openai_api.models = {"gpt-4.1"}
    _, error = await failure(openai_agent.reply(session, ALICE))
    assert error.kind is ErrorKind.NOT_CONFIGURED
    assert "AGENT_MODEL" in error.detail
    assert "does not exist" in error.detail


async def test_a_bad_key_is_an_auth_error(
    openai_api: FakeOpenAIChat, session: AgentSession
) -> None:
    agent = OpenAIAgent(
        base_url=openai_api.api_base, api_key=Secret("sk-wrong"), model="m", wake_name="OC"
    )
    try:
        _, error = await failure(agent.reply(session, ALICE))
    finally:
        await agent.aclose()
    assert error.kind is ErrorKind.AUTH
    assert "Incorrect API key" in error.detail


async def test_a_server_that_ignores_stream_still_answers(
    openai_agent: OpenAIAgent,
    openai_api: FakeOpenAIChat,
    session: AgentSession,
    usages: list[AgentUsage],
) -> None:
    openai_api.ignore_stream = True
    openai_api.reply = "  Whole answer at once. "
    assert await collect(openai_agent.reply(session, ALICE)) == ["Whole answer at once."]
    assert usages[-1].completion_tokens == 9


async def test_an_empty_whole_answer_is_an_empty_result(
    openai_agent: OpenAIAgent, openai_api: FakeOpenAIChat, session: AgentSession
) -> None:
    openai_api.ignore_stream = True
    openai_api.reply = " "
    _, error = await failure(openai_agent.reply(session, ALICE))
    assert error.kind is ErrorKind.EMPTY_RESULT


async def test_from_settings_uses_base_url_key_and_model(openai_api: FakeOpenAIChat) -> None:
    settings = settings_for(
        AGENT_PROVIDER="openai",
        OPENAI_BASE_URL=openai_api.api_base,
        OPENAI_API_KEY=openai_api.api_key,
        AGENT_MODEL="llama3.1:8b",
        WAKE_NAME="Claw",
    )
    agent = OpenAIAgent.from_settings(settings)
    try:
        reply = await collect(agent.reply(AgentSession(session_key="s"), ALICE))
    finally:
        await agent.aclose()
    assert "".join(reply) == openai_api.reply
    body = json.loads(openai_api.requests[-1].body)
    assert body["model"] == "llama3.1:8b"
    assert body["messages"][0]["content"].startswith("You are Claw,")


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ([1, 2], ErrorKind.BAD_RESPONSE),
        ({"choices": []}, ErrorKind.BAD_RESPONSE),
        ({"choices": "none"}, ErrorKind.BAD_RESPONSE),
        ({"choices": [{"index": 0, "message": {"content": 5}}]}, ErrorKind.BAD_RESPONSE),
        ({"error": {"message": "overloaded"}}, ErrorKind.UNAVAILABLE),
    ],
)
async def test_whole_answers_of_the_wrong_shape_are_refused(
    openai_agent: OpenAIAgent,
    openai_api: FakeOpenAIChat,
    session: AgentSession,
    answer: Any,
    kind: ErrorKind,
) -> None:
    openai_api.ignore_stream = True
    openai_api.json_override = answer
    _, error = await failure(openai_agent.reply(session, ALICE))
    assert error.kind is kind


async def test_only_the_first_choice_is_spoken(
    openai_agent: OpenAIAgent, openai_api: FakeOpenAIChat, session: AgentSession
) -> None:
    openai_api.events_override = [
        json.dumps(
            {
                "choices": [
                    {"index": 1, "delta": {"content": "other "}},
                    {"index": 0, "delta": {"content": "chosen"}},
                ]
            }
        ),
        json.dumps({"choices": [{"index": 1, "delta": {"content": "more"}}]}),
    ]
    assert await collect(openai_agent.reply(session, ALICE)) == ["chosen"]
