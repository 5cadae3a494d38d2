"""A local fake of the OpenAI chat completions API (``POST /v1/chat/completions``).

It checks what the real API checks — bearer key, JSON body, ``model``, non-empty
``messages`` with valid roles and names, ``stream``/``stream_options`` types — and answers
with an SSE stream (``data: {...}`` events, a usage chunk when asked, ``data: [DONE]``) or,
without ``stream``, one ``chat.completion`` object. Besides the shared controls of
:class:`FakeHttpApi` it can hold the stream after N content chunks until released, leave
out ``[DONE]``, send arbitrary events, and signals the first chunk, completion and a client
that hung up through events tests can wait on.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DONE = "[DONE]"


@dataclass(frozen=True)
class Event:
    """One SSE event to send; ``content`` marks the chunks that carry answer text."""

    data: str
    content: bool = False


class Invalid(Exception):
    """A request the real server would refuse: status and message for the error body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def words(text: str) -> list[str]:
    """Split an answer into word deltas the way tokens stream in (spaces kept)."""
    return re.findall(r"\S+\s*", text)


class FakeOpenAIChat(FakeHttpApi):
    """``async with FakeOpenAIChat() as api``; point ``AsyncOpenAI(base_url=api.api_base)``."""

    path = "/v1/chat/completions"

    def __init__(
        self,
        *,
        api_key: str = "sk-test-key",
        reply: str = "Hello there! How can I help you today?",
        prompt_tokens: int = 42,
        completion_tokens: int = 9,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.reply = reply
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.models: set[str] | None = None  # None accepts any model name
        self.include_done = True
        self.ignore_stream = False  # answer in one JSON object even when asked to stream
        self.json_override: Any = None  # sent instead of the chat.completion object
        self.hold_after: int | None = None  # content chunks sent before waiting for release
        self.events_override: list[str] | None = None  # raw data payloads sent instead
        self.release = asyncio.Event()
        self.first_chunk_sent = asyncio.Event()
        self.held = asyncio.Event()
        self.completed = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.content_chunks_sent = 0
        self.bodies: list[dict[str, Any]] = []

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self.handle)

    async def stop(self) -> None:
        self.release.set()  # never leave a held handler behind
        await super().stop()

    # --- validation --------------------------------------------------------------------

    def check_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise Invalid(401, "Incorrect API key provided.", "invalid_api_key")

    def check_body(self, request: web.Request, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Invalid(400, "you must provide a model parameter")
        if self.models is not None and model not in self.models:
            raise Invalid(404, f"The model `{model}` does not exist.", "model_not_found")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Invalid(400, "'messages' must be a non-empty array")
        for index, message in enumerate(messages):
            self.check_message(index, message)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise Invalid(400, "'stream' must be a boolean")
        if "stream_options" in body and not stream:
            raise Invalid(400, "'stream_options' is only allowed when 'stream' is enabled.")
        if "user" in body and not isinstance(body["user"], str):
            raise Invalid(400, "'user' must be a string")

    @staticmethod
    def check_message(index: int, message: Any) -> None:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise Invalid(400, f"messages[{index}]: role must be one of {sorted(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str | list) and not (
            content is None and message["role"] == "assistant"
        ):
            raise Invalid(400, f"messages[{index}].content must be a string or parts")
        name = message.get("name")
        if name is not None and not (isinstance(name, str) and NAME_PATTERN.match(name)):
            raise Invalid(400, f"messages[{index}].name must match {NAME_PATTERN.pattern}")

    # --- handling ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        injected = await self.before_response()
        if injected is not None:
            return injected
        try:
            self.check_auth(request)
            if not request.content_type.startswith("application/json"):
                raise Invalid(400, "expected a JSON body")
            try:
                body = json.loads(self.requests[-1].body)
            except ValueError:
                raise Invalid(400, "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise Invalid(400, "the body must be a JSON object")
            self.check_body(request, body)
        except Invalid as invalid:
            return self.refuse(invalid)
        self.bodies.append(body)
        if not body.get("stream", False) or self.ignore_stream:
            answer = self.completion(body) if self.json_override is None else self.json_override
            return web.json_response(answer)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self.stream(request, self.events(body, include_usage=include_usage))

    def refuse(self, invalid: Invalid) -> web.Response:
        error = {"message": invalid.message, "type": "invalid_request_error", "code": invalid.code}
        return web.json_response({"error": error}, status=invalid.status)

    def chunk(self, body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> str:
        return json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def events(self, body: dict[str, Any], *, include_usage: bool) -> list[Event]:
        """The stream as OpenAI sends it: role chunk, content chunks, finish, usage."""
        if self.events_override is not None:
            return [Event(data, content=True) for data in self.events_override]
        events = [Event(self.chunk(body, {"role": "assistant", "content": ""}, None))]
        events += [
            Event(self.chunk(body, {"content": word}, None), content=True)
            for word in words(self.reply)
        ]
        events.append(Event(self.chunk(body, {}, "stop")))
        if include_usage:
            usage_chunk = json.loads(self.chunk(body, {}, None))
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self.usage()
            events.append(Event(json.dumps(usage_chunk)))
        return events

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(),
        }

    async def stream(self, request: web.Request, events: list[Event]) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )
        await response.prepare(request)
        sent = 0
        try:
            for event in events:
                cut = self.controls.cut_stream_after
                if cut is not None and sent >= cut:
                    # Drop the connection mid-stream, as a crashed upstream would.
                    if request.transport is not None:
                        request.transport.close()
                    return response
                if event.content and self.content_chunks_sent == self.hold_after:
                    self.held.set()
                    await self.release.wait()
                elif sent and self.controls.chunk_delay:
                    await asyncio.sleep(self.controls.chunk_delay)
                await response.write(f"data: {event.data}\n\n".encode())
                sent += 1
                if event.content:
                    self.content_chunks_sent += 1
                    self.first_chunk_sent.set()
            if self.include_done:
                await response.write(f"data: {DONE}\n\n".encode())
            await response.write_eof()
            self.completed.set()
        except ConnectionError:
            # The client hung up: aiohttp raises ClientConnectionResetError on the next write.
            self.disconnected.set()
        except asyncio.CancelledError:
            self.disconnected.set()
            raise
        return response
