"""A local fake of the OpenClaw gateway's OpenAI-compatible ``POST /v1/chat/completions``.

Like the real gateway (src/gateway/server-http.ts, openai-http.ts): the route exists only
when ``gateway.http.endpoints.chatCompletions.enabled`` is true — otherwise the request
falls through to a plain-text ``404 Not Found``; auth failures are
``{"error": {"message": "Unauthorized", "type": "unauthorized"}}``; a ``model`` that is not
``openclaw`` / ``openclaw/<agentId>`` is a 400; the stream sends the assistant role with the
first text, content chunks with ``finish_reason: null``, then — on current gateways — a stop
chunk and, when ``stream_options.include_usage`` asks for it, a usage chunk, then
``data: [DONE]``. A failed agent run streams ``Error: internal error`` as text with
``finish_reason: "stop"``; a run with no answer streams ``No response from OpenClaw.``.
Stricter than the gateway, it also requires ``model: openclaw/<agentId>`` and the
``x-openclaw-session-key`` header, so a client that forgets either fails its test.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from tests.fakes.openai_chat import Event, FakeOpenAIChat, Invalid, words

AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$", re.IGNORECASE)
SESSION_KEY_HEADER = "x-openclaw-session-key"
TOKEN = "gateway-token"
RUN_FAILED = "Error: internal error"
NO_RESPONSE = "No response from OpenClaw."


class FakeOpenClawGateway(FakeOpenAIChat):
    """``enabled=False`` models a gateway whose chat completions endpoint is off (the default)."""

    def __init__(self, *, token: str = TOKEN, enabled: bool = True, **kwargs: Any) -> None:
        super().__init__(api_key=token, **kwargs)
        self.enabled = enabled
        self.agents: set[str] | None = None  # None accepts any well-formed agent id
        self.reports_usage = True  # False: an older gateway (no stop or usage chunk)
        self.run_fails = False  # the agent run throws after the stream started

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.enabled:
            await self.record(request)
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        return await super().handle(request)

    def check_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise Invalid(401, "Unauthorized", "unauthorized")

    def refuse(self, invalid: Invalid) -> web.Response:
        kind = "unauthorized" if invalid.status == 401 else "invalid_request_error"
        return web.json_response(
            {"error": {"message": invalid.message, "type": kind}}, status=invalid.status
        )

    def check_body(self, request: web.Request, body: dict[str, Any]) -> None:
        super().check_body(request, body)
        model = str(body["model"])
        agent_id = model.removeprefix("openclaw/")
        if not model.startswith("openclaw/") or not AGENT_ID.match(agent_id):
            raise Invalid(400, "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.")
        if self.agents is not None and agent_id.lower() not in self.agents:
            raise Invalid(400, f"Unknown agent `{agent_id}`.")
        if not request.headers.get(SESSION_KEY_HEADER, "").strip():
            raise Invalid(400, f"missing {SESSION_KEY_HEADER} header")

    def events(self, body: dict[str, Any], *, include_usage: bool) -> list[Event]:
        if self.events_override is not None:
            return super().events(body, include_usage=include_usage)
        if self.run_fails:
            events = [Event(self.chunk(body, {"content": RUN_FAILED}, "stop"), content=True)]
        else:
            events = [Event(self.chunk(body, {"role": "assistant"}, None))]
            events += [
                Event(self.chunk(body, {"content": word}, None), content=True)
                for word in words(self.reply) or [NO_RESPONSE]
            ]
            if self.reports_usage:
                events.append(Event(self.chunk(body, {}, "stop")))
        if self.reports_usage and include_usage:
            usage_chunk = json.loads(self.chunk(body, {}, None))
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self.usage()
            events.append(Event(json.dumps(usage_chunk)))
        return events

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        completion = super().completion(body)
        if not self.reply.strip():
            completion["choices"][0]["message"]["content"] = NO_RESPONSE
        if not self.reports_usage:
            completion["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return completion

    def session_keys(self) -> list[str | None]:
        """The session key header of each recorded request, in order."""
        return [request.headers.get(SESSION_KEY_HEADER) for request in self.requests]

    def json_bodies(self) -> list[Any]:
        return [json.loads(request.body) for request in self.requests if request.body]
