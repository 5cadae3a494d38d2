"""A streaming chat-completions agent over the openai SDK: the OpenClaw and OpenAI providers' base.

The request goes through the SDK (auth, request shape, HTTP errors); the SSE body is read
line by line so that a stream ending without ``data: [DONE]`` is an error rather than a
silently truncated answer (the SDK's own iterator treats both endings alike).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import openai
import structlog

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.agent.failures import (
    TRANSPORT_ERRORS,
    agent_error,
    from_sdk,
    from_transport,
)
from openclaw_voice.agent.prompt import build_messages
from openclaw_voice.agent.sse import event_data
from openclaw_voice.agent.usage import Outcome, UsageMeter, UsageObserver
from openclaw_voice.errors import ErrorKind

log = structlog.get_logger(__name__)

DONE = "[DONE]"
# A backstop for each socket operation; the fallback chain's first-token and stall
# timeouts are the bounds that matter and cancel the request first.
SDK_TIMEOUT_SECONDS = 120.0


class ChatCompletionsAgent:
    """Answers a turn by streaming ``POST {base_url}/chat/completions`` (one attempt)."""

    def __init__(
        self,
        *,
        name: str,
        client: openai.AsyncOpenAI,
        model: str,
        wake_name: str,
        not_found: str | None = None,
        usage_observer: UsageObserver | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.wake_name = wake_name
        self._client = client
        self._not_found = not_found
        self._usage_observer = usage_observer

    def extra_headers(self, session: AgentSession) -> dict[str, str]:
        """Headers a provider adds to every request of this session."""
        return {}

    def user_field(self, turn: AgentTurn) -> str | None:
        """The request's ``user`` field, if the provider sends one."""
        return None

    def check_text(self, content: str, finish_reason: object) -> None:
        """Raise for text that is a server's failure notice rather than an answer."""

    async def aclose(self) -> None:
        await self._client.close()

    async def reply(self, session: AgentSession, turn: AgentTurn) -> AsyncGenerator[str, None]:
        meter = UsageMeter(self.name, self.model, session.guild_id, self._usage_observer)
        outcome: Outcome = "failed"
        try:
            # aclosing: a consumer that stops early (a barge-in) closes the HTTP stream now.
            async with contextlib.aclosing(self._reply(session, turn, meter)) as deltas:
                async for delta in deltas:
                    meter.text(delta)
                    yield delta
            outcome = "completed"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        finally:
            usage = meter.report(outcome)
            log.debug(
                "agent reply finished",
                context={
                    "provider": self.name,
                    "outcome": outcome,
                    "characters": usage.characters,
                    "first_token_seconds": usage.first_token_seconds,
                    "duration_seconds": round(usage.duration_seconds, 3),
                },
            )

    async def _reply(
        self, session: AgentSession, turn: AgentTurn, meter: UsageMeter
    ) -> AsyncGenerator[str, None]:
        messages = build_messages(session, turn, wake_name=self.wake_name)
        user = self.user_field(turn)
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                user=user if user is not None else openai.omit,
                extra_headers=self.extra_headers(session),
            ) as response:
                content_type = response.headers.get("content-type", "")
                if content_type.startswith("application/json"):
                    # A server that ignores ``stream`` answers in one piece; accept it.
                    yield await self._whole(response, meter)
                    return
                deltas = self._deltas(response.iter_lines(), meter)
                async with contextlib.aclosing(deltas):
                    async for delta in deltas:
                        yield delta
        except openai.APIError as error:
            raise from_sdk(self.name, error, not_found=self._not_found) from error

    async def _whole(self, response: openai.AsyncAPIResponse[Any], meter: UsageMeter) -> str:
        try:
            payload = json.loads(await response.read())
        except ValueError as error:
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "malformed JSON") from error
        except TRANSPORT_ERRORS as error:
            raise from_transport(self.name, error) from error
        if not isinstance(payload, dict):
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "the answer is not an object")
        self._raise_on_error_event(payload)
        choices = payload.get("choices")
        choice = _first_choice(choices) if isinstance(choices, list) else None
        message = _part(choice, "message")
        if choice is None or message is None:
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "the answer has no message")
        text = _content(message)
        if text is None:
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "message content is not text")
        self.check_text(text, choice.get("finish_reason"))
        self._record_usage(payload, meter)
        if not text.strip():
            raise agent_error(self.name, ErrorKind.EMPTY_RESULT, "the agent answered nothing")
        return text.strip()

    async def _lines(self, lines: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            async for line in lines:
                yield line
        except TRANSPORT_ERRORS as error:
            raise from_transport(self.name, error) from error

    async def _deltas(
        self, lines: AsyncIterator[str], meter: UsageMeter
    ) -> AsyncGenerator[str, None]:
        """Content deltas in order; leading blanks are held back so a blank answer is empty."""
        started = False
        async for data in event_data(self._lines(lines)):
            if data.strip() == DONE:
                break
            for content in self._chunk_deltas(data, meter):
                delta = content if started else content.lstrip()
                if delta:
                    started = True
                    yield delta
        else:
            raise agent_error(
                self.name, ErrorKind.BAD_RESPONSE, "the stream ended without data: [DONE]"
            )
        if not started:
            raise agent_error(self.name, ErrorKind.EMPTY_RESULT, "the agent answered nothing")

    def _chunk_deltas(self, data: str, meter: UsageMeter) -> list[str]:
        try:
            chunk = json.loads(data)
        except ValueError as error:
            raise agent_error(
                self.name, ErrorKind.BAD_RESPONSE, f"malformed JSON in the stream: {data[:80]!r}"
            ) from error
        if not isinstance(chunk, dict):
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "a stream chunk is not an object")
        self._raise_on_error_event(chunk)
        self._record_usage(chunk, meter)
        choices = chunk.get("choices", [])
        if not isinstance(choices, list):
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "chunk choices is not a list")
        choice = _first_choice(choices)
        delta = _part(choice, "delta")
        if choice is None or delta is None:
            return []
        content = _content(delta)
        if content is None:
            raise agent_error(self.name, ErrorKind.BAD_RESPONSE, "delta content is not text")
        self.check_text(content, choice.get("finish_reason"))
        return [content] if content else []

    def _raise_on_error_event(self, payload: Mapping[str, Any]) -> None:
        error = payload.get("error")
        if error is None:
            return
        message = error.get("message") if isinstance(error, dict) else error
        raise agent_error(
            self.name, ErrorKind.UNAVAILABLE, f"the server reported an error: {str(message)[:200]}"
        )

    def _record_usage(self, payload: Mapping[str, Any], meter: UsageMeter) -> None:
        usage = payload.get("usage")
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        meter.tokens(
            prompt if isinstance(prompt, int) else None,
            completion if isinstance(completion, int) else None,
        )


def _first_choice(choices: list[Any]) -> Mapping[str, Any] | None:
    """Choice 0, the only one requested, if this payload carries it."""
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _part(choice: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    """The ``key`` object (delta or message) of a choice, if it is an object."""
    value = None if choice is None else choice.get(key)
    return value if isinstance(value, dict) else None


def _content(part: Mapping[str, Any]) -> str | None:
    """Text content ('' when absent or null); None when it is something else."""
    content = part.get("content")
    if content is None:
        return ""
    return content if isinstance(content, str) else None
