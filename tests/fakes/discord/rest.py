"""The fake's REST API: the routes discord.py calls for login, commands, interactions,
webhooks (followups), channel messages and guild/channel/member fetches."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from tests.fakes.discord import payloads
from tests.fakes.discord.payloads import JSON

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

log = structlog.get_logger()

Handler = Callable[[web.Request, "re.Match[str]", JSON], Awaitable[web.Response]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json`` (no charset)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status=status)


@dataclass
class InteractionRecord:
    """One INTERACTION_CREATE the fake sent and everything the bot answered to it."""

    id: int
    token: str
    guild_id: int
    channel_id: int
    user_id: int
    command_name: str
    options: list[JSON]
    callbacks: list[JSON] = field(default_factory=list)
    original: JSON | None = None
    followups: dict[int, JSON] = field(default_factory=dict)
    deleted_followups: list[int] = field(default_factory=list)


class RestApi:
    """Routes ``/api/v10/...``; every request is recorded as ``rest`` in the fake's recorder."""

    prefix = "/api/v10"

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.commands: dict[int | None, dict[str, JSON]] = {}
        self.interactions: dict[str, InteractionRecord] = {}
        self.messages: dict[int, JSON] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._add("GET", r"/users/@me", self._get_me)
        self._add("GET", r"/gateway", self._get_gateway)
        self._add("GET", r"/gateway/bot", self._get_gateway)
        self._add("GET", r"/oauth2/applications/@me", self._get_application)
        self._add("GET", r"/applications/@me", self._get_application)
        self._add("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands)
        self._add("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands)
        self._add(
            "GET", r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", self._get_commands
        )
        self._add(
            "PUT", r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", self._put_commands
        )
        self._add("POST", r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback", self._callback)
        self._add("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._followup_create)
        msg = r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)"
        self._add("GET", msg, self._followup_get)
        self._add("PATCH", msg, self._followup_edit)
        self._add("DELETE", msg, self._followup_delete)
        self._add("POST", r"/channels/(?P<channel>\d+)/messages", self._channel_message_create)
        chan_msg = r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)"
        self._add("PATCH", chan_msg, self._channel_message_edit)
        self._add("DELETE", chan_msg, self._channel_message_delete)
        self._add("GET", r"/channels/(?P<channel>\d+)", self._get_channel)
        self._add("GET", r"/guilds/(?P<guild>\d+)", self._get_guild)
        self._add("GET", r"/guilds/(?P<guild>\d+)/channels", self._get_guild_channels)
        self._add("GET", r"/guilds/(?P<guild>\d+)/members/(?P<user>\d+)", self._get_member)

    def _add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + "/?$"), handler))

    def install(self, app: web.Application) -> None:
        app.router.add_route("*", self.prefix + "/{tail:.*}", self._dispatch)

    async def _read_body(self, request: web.Request) -> JSON:
        if not request.body_exists:
            return {}
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            raw = form.get("payload_json")
            return json.loads(str(raw)) if raw is not None else {}
        text = await request.text()
        if not text:
            return {}
        data = json.loads(text)
        return data if isinstance(data, dict) else {"items": data}

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path[len(self.prefix) :]
        controls = self.fake.controls.rest
        body = await self._read_body(request)
        self.fake.recorder.record("rest", method=request.method, path=path, body=body)
        if controls.delay > 0:
            await asyncio.sleep(controls.delay)
        fault = controls.take_fault(request.method, path)
        if fault is not None:
            self.fake.recorder.record(
                "rest_fault", method=request.method, path=path, status=fault.status
            )
            if fault.status == 429:
                return json_response(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": fault.retry_after,
                        "global": fault.is_global,
                        "code": 0 if not fault.is_global else 40062,
                    },
                    status=429,
                    headers={
                        "Via": "1.1 google",
                        "Retry-After": str(max(1, round(fault.retry_after))),
                        "X-RateLimit-Scope": "global" if fault.is_global else "user",
                    },
                )
            return error_response(fault.status, 0, "injected failure")
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            match = pattern.match(path)
            if match is not None:
                return await handler(request, match, body)
        log.warning("fake_discord.rest.unknown_route", method=request.method, path=path)
        return error_response(404, 0, "404: Not Found")

    # --- login and application ---------------------------------------------------------

    async def _get_me(self, request: web.Request, match: re.Match[str], body: JSON) -> web.Response:
        token = request.headers.get("Authorization", "")
        if token != f"Bot {self.fake.token}":
            return error_response(401, 0, "401: Unauthorized")
        return json_response(payloads.user_payload(self.fake.world.bot))

    async def _get_gateway(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        return json_response(
            {
                "url": self.fake.gateway.url,
                "shards": self.fake.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_application(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        return json_response(payloads.application_payload(self.fake.world))

    # --- application commands ----------------------------------------------------------

    def _scope(self, match: re.Match[str]) -> int | None:
        guild = match.groupdict().get("guild")
        return int(guild) if guild is not None else None

    async def _get_commands(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        return json_response(list(self.commands.get(self._scope(match), {}).values()))

    async def _put_commands(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        scope = self._scope(match)
        registered: dict[str, JSON] = {}
        for item in body.get("items", []):
            existing = self.commands.get(scope, {}).get(item["name"])
            command_id = int(existing["id"]) if existing else self.fake.world.ids.next()
            registered[item["name"]] = payloads.application_command_payload(
                self.fake.world, command_id, item, scope
            )
        self.commands[scope] = registered
        self.fake.recorder.record("commands_synced", guild_id=scope, names=sorted(registered))
        return json_response(list(registered.values()))

    def find_command(self, name: str, guild_id: int) -> JSON | None:
        return self.commands.get(guild_id, {}).get(name) or self.commands.get(None, {}).get(name)

    # --- interactions and followups ----------------------------------------------------

    async def _callback(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        record = self.interactions.get(match["token"])
        if record is None or record.id != int(match["id"]):
            return error_response(404, 10062, "Unknown interaction")
        if record.callbacks:
            return error_response(400, 40060, "Interaction has already been acknowledged.")
        record.callbacks.append(body)
        response_type = int(body.get("type", 0))
        data = body.get("data") or {}
        message: JSON | None = None
        if response_type in (4, 5, 7):
            message = self._message(record.channel_id, data, interaction_id=record.id)
            if response_type == 5:
                message["flags"] = int(message["flags"]) | 128  # loading
            record.original = message
        self.fake.recorder.record(
            "interaction_response",
            interaction_id=record.id,
            type=response_type,
            data=data,
            content=data.get("content"),
        )
        interaction: JSON = {
            "id": str(record.id),
            "type": 2,
            "response_message_id": message["id"] if message else None,
            "response_message_loading": response_type == 5,
            "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
        }
        result: JSON = {"interaction": interaction}
        if message is not None:
            result["resource"] = {"type": response_type, "message": message}
        return json_response(result)

    def _message(self, channel_id: int, body: JSON, *, interaction_id: int | None = None) -> JSON:
        world = self.fake.world
        message_id = world.ids.next()
        webhook_id = world.application_id if interaction_id is not None else None
        message = payloads.message_payload(
            message_id,
            world.find_channel(channel_id),
            channel_id,
            world.bot,
            body,
            webhook_id=webhook_id,
            interaction_id=interaction_id,
        )
        self.messages[message_id] = message
        return message

    def _interaction(self, match: re.Match[str]) -> InteractionRecord | None:
        return self.interactions.get(match["token"])

    async def _followup_create(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        record = self._interaction(match)
        if record is None:
            return error_response(404, 10015, "Unknown Webhook")
        message = self._message(record.channel_id, body, interaction_id=record.id)
        record.followups[int(message["id"])] = message
        self.fake.recorder.record(
            "followup_create", interaction_id=record.id, message_id=int(message["id"]), body=body
        )
        return json_response(message)

    def _target(self, record: InteractionRecord, which: str) -> JSON | None:
        if which == "@original":
            return record.original
        return record.followups.get(int(which))

    async def _followup_get(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        record = self._interaction(match)
        target = self._target(record, match["message"]) if record else None
        if target is None:
            return error_response(404, 10008, "Unknown Message")
        return json_response(target)

    async def _followup_edit(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        record = self._interaction(match)
        target = self._target(record, match["message"]) if record else None
        if record is None or target is None:
            return error_response(404, 10008, "Unknown Message")
        for key in ("content", "embeds", "components"):
            if key in body:
                target[key] = (
                    body[key] if body[key] is not None else ([] if key != "content" else "")
                )
        target["flags"] = int(target["flags"]) & ~128
        target["edited_timestamp"] = payloads.iso_timestamp(self.fake.world.ids.next())
        self.fake.recorder.record(
            "followup_edit", interaction_id=record.id, message=match["message"], body=body
        )
        return json_response(target)

    async def _followup_delete(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        record = self._interaction(match)
        target = self._target(record, match["message"]) if record else None
        if record is None or target is None:
            return error_response(404, 10008, "Unknown Message")
        if match["message"] == "@original":
            record.original = None
        else:
            record.followups.pop(int(match["message"]))
            record.deleted_followups.append(int(match["message"]))
        self.fake.recorder.record(
            "followup_delete", interaction_id=record.id, message=match["message"]
        )
        return web.Response(status=204)

    # --- channel messages --------------------------------------------------------------

    async def _channel_message_create(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        channel_id = int(match["channel"])
        if self.fake.world.find_channel(channel_id) is None:
            return error_response(404, 10003, "Unknown Channel")
        message = self._message(channel_id, body)
        self.fake.recorder.record(
            "channel_message",
            channel_id=channel_id,
            message_id=int(message["id"]),
            content=message["content"],
            body=body,
        )
        return json_response(message)

    async def _channel_message_edit(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        message = self.messages.get(int(match["message"]))
        if message is None:
            return error_response(404, 10008, "Unknown Message")
        if "content" in body:
            message["content"] = body["content"] or ""
        message["edited_timestamp"] = payloads.iso_timestamp(self.fake.world.ids.next())
        self.fake.recorder.record(
            "channel_message_edit", message_id=int(match["message"]), body=body
        )
        return json_response(message)

    async def _channel_message_delete(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        if self.messages.pop(int(match["message"]), None) is None:
            return error_response(404, 10008, "Unknown Message")
        self.fake.recorder.record("channel_message_delete", message_id=int(match["message"]))
        return web.Response(status=204)

    # --- guild, channel and member fetches ---------------------------------------------

    async def _get_channel(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        channel = self.fake.world.find_channel(int(match["channel"]))
        if channel is None:
            return error_response(404, 10003, "Unknown Channel")
        return json_response(payloads.channel_payload(channel))

    async def _get_guild(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        guild = self.fake.world.guilds.get(int(match["guild"]))
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        return json_response(payloads.guild_payload(guild))

    async def _get_guild_channels(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        guild = self.fake.world.guilds.get(int(match["guild"]))
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        return json_response([payloads.channel_payload(c) for c in guild.channels.values()])

    async def _get_member(
        self, request: web.Request, match: re.Match[str], body: JSON
    ) -> web.Response:
        guild = self.fake.world.guilds.get(int(match["guild"]))
        user_id = int(match["user"])
        if guild is None or user_id not in guild.member_ids:
            return error_response(404, 10007, "Unknown Member")
        return json_response(payloads.member_payload(guild, self.fake.world.users[user_id]))
