"""The fake's main gateway: HELLO, heartbeats, IDENTIFY/READY, RESUME, op 7/9, dispatches."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSMsgType, web

from tests.fakes.discord import payloads
from tests.fakes.discord.payloads import JSON

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

log = structlog.get_logger()

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_VOICE_STATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

HEARTBEAT_INTERVAL_MS = 41_250
RESUMABLE_CLOSE = 4000
MAX_REPLAY = 10_000  # events kept per session for RESUME


@dataclass
class GatewaySession:
    """A bot session: survives websocket drops so that RESUME can replay what was missed."""

    session_id: str
    shard_id: int
    shard_count: int
    sequence: int = 0
    sent: list[tuple[int, JSON]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    resumes: int = 0
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    # op 4s are answered one at a time, in the order they arrived (asyncio.Lock is FIFO)
    voice_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def owns_guild(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count == self.shard_id


class Gateway:
    """Serves ``/gateway``; the fake's :meth:`dispatch` reaches every live bot session."""

    path = "/gateway"

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[web.WebSocketResponse] = set()
        # When set: an IDENTIFY waits until the event is set before READY (Discord slow to
        # let the bot in, e.g. during an incident).
        self.hold_ready: asyncio.Event | None = None

    def install(self, app: web.Application) -> None:
        app.router.add_get(self.path, self._handle)
        app.router.add_get(self.path + "/", self._handle)

    @property
    def url(self) -> str:
        return f"wss://{self.fake.host}:{self.fake.port}{self.path}"

    # --- sending -----------------------------------------------------------------------

    async def _send(self, ws: web.WebSocketResponse, payload: JSON) -> None:
        if ws.closed:
            return
        try:
            await ws.send_str(json.dumps(payload))
        except (ConnectionResetError, RuntimeError):
            log.debug("fake_discord.gateway.send_failed", op=payload.get("op"))

    async def _dispatch_to(self, session: GatewaySession, event: str, data: JSON) -> None:
        session.sequence += 1
        payload = {"op": OP_DISPATCH, "t": event, "s": session.sequence, "d": data}
        session.sent.append((session.sequence, payload))
        if len(session.sent) > MAX_REPLAY:
            del session.sent[: len(session.sent) - MAX_REPLAY]
        self.fake.recorder.record("gateway_dispatch", event=event, session_id=session.session_id)
        if session.ws is not None:
            await self._send(session.ws, payload)

    async def dispatch(self, event: str, data: JSON, *, guild_id: int | None = None) -> None:
        """Send ``event`` to every session (for a guild: to the shard that owns it)."""
        for session in list(self.sessions.values()):
            if guild_id is None or session.owns_guild(guild_id):
                await self._dispatch_to(session, event, data)

    # --- scenario controls -------------------------------------------------------------

    async def drop(self, *, resumable: bool = True) -> None:
        """Close every bot websocket; without ``resumable`` the sessions are forgotten too."""
        for session in list(self.sessions.values()):
            ws = session.ws
            session.ws = None
            if not resumable:
                self.sessions.pop(session.session_id, None)
            if ws is not None:
                await ws.close(code=RESUMABLE_CLOSE, message=b"fake drop")
        self.fake.recorder.record("gateway_drop", resumable=resumable)

    async def request_reconnect(self) -> None:
        """Op 7: the client closes and resumes."""
        for session in list(self.sessions.values()):
            if session.ws is not None:
                await self._send(session.ws, {"op": OP_RECONNECT, "d": None})

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Op 9; with ``resumable`` false the client must IDENTIFY again."""
        for session in list(self.sessions.values()):
            ws = session.ws
            if not resumable:
                self.sessions.pop(session.session_id, None)
            if ws is not None:
                await self._send(ws, {"op": OP_INVALID_SESSION, "d": resumable})

    # --- the websocket -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        self.connections.add(ws)
        self.fake.recorder.record("gateway_connect", query=dict(request.query))
        session: GatewaySession | None = None
        try:
            await self._send(
                ws, {"op": OP_HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}}
            )
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(message.data)
                session = await self._on_message(ws, session, payload) or session
        finally:
            self.connections.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
        return ws

    async def _on_message(
        self, ws: web.WebSocketResponse, session: GatewaySession | None, payload: JSON
    ) -> GatewaySession | None:
        op = payload.get("op")
        data: Any = payload.get("d")
        if op == OP_HEARTBEAT:
            await self._send(ws, {"op": OP_HEARTBEAT_ACK, "d": None})
            return None
        if op == OP_IDENTIFY:
            return await self._identify(ws, data)
        if op == OP_RESUME:
            return await self._resume(ws, data)
        if session is None:
            await ws.close(code=4003, message=b"Not authenticated.")
            return None
        if op == OP_VOICE_STATE:
            self.fake.recorder.record("gateway_voice_state", data=data)
            self.fake.spawn(self._voice_state(session, data))
        elif op == OP_PRESENCE:
            self.fake.recorder.record("gateway_presence", data=data)
        elif op == OP_REQUEST_MEMBERS:
            await self._members_chunk(session, data)
        return None

    async def _voice_state(self, session: GatewaySession, data: JSON) -> None:
        async with session.voice_lock:
            await self.fake.on_bot_voice_state(session, data)

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> GatewaySession | None:
        if data.get("token") != self.fake.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        shard = data.get("shard") or [0, 1]
        session = GatewaySession(
            session_id=secrets.token_hex(16), shard_id=int(shard[0]), shard_count=int(shard[1])
        )
        session.ws = ws
        self.sessions[session.session_id] = session
        world = self.fake.world
        guilds = [
            g
            for g in world.guilds.values()
            if session.owns_guild(g.id) and world.bot.id in g.member_ids
        ]
        ready = {
            "v": 10,
            "user": payloads.user_payload(world.bot),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "auth": {},
            "user_settings": {},
        }
        if self.hold_ready is not None:
            self.fake.recorder.record("gateway_ready_held", session_id=session.session_id)
            await self.hold_ready.wait()
        await self._dispatch_to(session, "READY", ready)
        for guild in guilds:
            await self._dispatch_to(
                session, "GUILD_CREATE", payloads.guild_create_payload(world, guild)
            )
        session.identified.set()
        self.fake.recorder.record("gateway_identify", session_id=session.session_id, shard=shard)
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> GatewaySession | None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.fake.token:
            await self._send(ws, {"op": OP_INVALID_SESSION, "d": False})
            self.fake.recorder.record("gateway_resume_rejected")
            return None
        session.ws = ws
        session.resumes += 1
        last_seen = int(data.get("seq") or 0)
        missed = [payload for seq, payload in session.sent if seq > last_seen]
        for payload in missed:
            await self._send(ws, payload)
        await self._dispatch_to(session, "RESUMED", {})
        self.fake.recorder.record(
            "gateway_resumed", session_id=session.session_id, replayed=len(missed)
        )
        return session

    async def _members_chunk(self, session: GatewaySession, data: JSON) -> None:
        guild = self.fake.world.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        members = [
            payloads.member_payload(guild, self.fake.world.users[u]) for u in guild.member_ids
        ]
        chunk = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            "nonce": data.get("nonce"),
        }
        await self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def close(self) -> None:
        for ws in list(self.connections):
            await ws.close(code=1001, message=b"server shutdown")
