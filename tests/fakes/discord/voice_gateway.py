"""The fake voice gateway (websocket over TLS) and each bot voice connection's UDP socket."""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSMsgType, web

from tests.fakes.discord.capture import Capture
from tests.fakes.discord.dave import ExternalSender
from tests.fakes.discord.payloads import JSON
from tests.fakes.discord.voice_call import Call
from tests.fakes.discord.voice_udp import VoiceUdp

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord
    from tests.fakes.discord.simulated import SimulatedUser
    from tests.fakes.discord.world import Guild, User

log = structlog.get_logger()

# Voice gateway opcodes (v8).
IDENTIFY = 0
SELECT_PROTOCOL = 1
READY = 2
HEARTBEAT = 3
SESSION_DESCRIPTION = 4
SPEAKING = 5
HEARTBEAT_ACK = 6
RESUME = 7
HELLO = 8
RESUMED = 9
CLIENTS_CONNECT = 11
CLIENT_CONNECT = 12
CLIENT_DISCONNECT = 13
DAVE_PREPARE_TRANSITION = 21
DAVE_EXECUTE_TRANSITION = 22
DAVE_TRANSITION_READY = 23
DAVE_PREPARE_EPOCH = 24
MLS_EXTERNAL_SENDER = 25
MLS_KEY_PACKAGE = 26
MLS_PROPOSALS = 27
MLS_COMMIT_WELCOME = 28
MLS_ANNOUNCE_COMMIT_TRANSITION = 29
MLS_WELCOME = 30
MLS_INVALID_COMMIT_WELCOME = 31

# Offered as Discord offers them; only XChaCha20 is implemented (discord.py uses only it).
MODES = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]
IMPLEMENTED_MODES = {"aead_xchacha20_poly1305_rtpsize"}


@dataclass
class IssuedToken:
    guild_id: int
    channel_id: int
    session_id: str
    token: str


@dataclass
class VoiceConnection:
    """The bot's voice session in one guild: websocket, UDP socket, capture, DAVE member."""

    fake: FakeDiscord
    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    token: str
    ssrc: int
    udp: VoiceUdp
    ws: web.WebSocketResponse | None = None
    secret_key: bytes = b""
    mode: str = ""
    dave_version: int = 0
    key_package: bytes | None = None
    bot_ssrc_announced: asyncio.Event = field(default_factory=asyncio.Event)
    session_ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    call: Call | None = None
    speaking_sent: set[int] = field(default_factory=set)
    heartbeats: int = 0
    _seq: int = 0

    @property
    def capture(self) -> Capture:
        return self.udp.capture

    # --- sending -----------------------------------------------------------------------

    async def send_json(self, op: int, data: Any) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        self._seq += 1
        try:
            await ws.send_str(json.dumps({"op": op, "d": data, "seq": self._seq}))
        except (ConnectionResetError, RuntimeError):
            log.debug("fake_discord.voice.send_failed", op=op)

    async def send_binary(self, op: int, body: bytes) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        self._seq += 1
        try:
            await ws.send_bytes(struct.pack(">HB", self._seq & 0xFFFF, op) + body)
        except (ConnectionResetError, RuntimeError):
            log.debug("fake_discord.voice.send_failed", op=op)

    async def close(self, code: int) -> None:
        ws = self.ws
        if ws is not None:
            self.fake.recorder.record("voice_close", guild_id=self.guild_id, code=code)
            await ws.close(code=code, message=b"fake close")

    # --- the DAVE participant protocol (see voice_call.DaveParticipant) ------------------

    async def dave_external_sender(self, package: bytes) -> None:
        await self.send_binary(MLS_EXTERNAL_SENDER, package)

    async def dave_proposals(self, body: bytes, *, commit_expected: bool) -> None:
        await self.send_binary(MLS_PROPOSALS, body)

    async def dave_commit(self, transition_id: int, commit: bytes) -> None:
        await self.send_binary(
            MLS_ANNOUNCE_COMMIT_TRANSITION, struct.pack(">H", transition_id) + commit
        )

    async def dave_welcome(self, transition_id: int, welcome: bytes) -> None:
        await self.send_binary(MLS_WELCOME, struct.pack(">H", transition_id) + welcome)

    async def dave_execute_transition(self, transition_id: int) -> None:
        await self.send_json(DAVE_EXECUTE_TRANSITION, {"transition_id": transition_id})

    async def dave_prepare_epoch(self, epoch: int, version: int) -> None:
        self.key_package = None
        await self.send_json(DAVE_PREPARE_EPOCH, {"epoch": epoch, "protocol_version": version})

    async def dave_prepare_transition(self, transition_id: int, version: int) -> None:
        await self.send_json(
            DAVE_PREPARE_TRANSITION, {"transition_id": transition_id, "protocol_version": version}
        )

    # --- simulated users seen by this connection ---------------------------------------

    async def announce_speaking(self, sim: SimulatedUser) -> None:
        if sim.ssrc in self.speaking_sent:
            return
        self.speaking_sent.add(sim.ssrc)
        await self.send_json(
            SPEAKING, {"user_id": str(sim.user.id), "ssrc": sim.ssrc, "speaking": 1}
        )


class VoiceGateway:
    """Serves ``/voice/``; one :class:`VoiceConnection` per guild the bot is connected in."""

    path = "/voice/"

    def __init__(
        self, fake: FakeDiscord, *, dave_protocol_version: int, heartbeat_interval_ms: int
    ) -> None:
        self.fake = fake
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.dave_protocol_version = dave_protocol_version
        self.external_sender = ExternalSender()
        self.tokens: dict[str, IssuedToken] = {}
        self.connections: dict[int, VoiceConnection] = {}
        self.calls: dict[int, Call] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self.close_on_identify: list[int] = []
        self._next_ssrc = 1000 + fake.seed % 1000
        self._connection_events: dict[int, asyncio.Event] = {}

    def install(self, app: web.Application) -> None:
        app.router.add_get(self.path, self._handle)
        app.router.add_get(self.path.rstrip("/"), self._handle)

    @property
    def endpoint(self) -> str:
        return f"{self.fake.host}:{self.fake.port}/voice"

    def allocate_ssrc(self) -> int:
        self._next_ssrc += 1
        return self._next_ssrc

    def issue_token(self, guild_id: int, channel_id: int, session_id: str) -> str:
        token = secrets.token_hex(8)
        self.tokens[token] = IssuedToken(guild_id, channel_id, session_id, token)
        return token

    def call_for(self, guild_id: int, channel_id: int) -> Call:
        call = self.calls.get(channel_id)
        if call is None:
            call = Call(
                guild_id=guild_id,
                channel_id=channel_id,
                recorder=self.fake.recorder,
                external_sender=self.external_sender,
                dave_version=self.dave_protocol_version,
            )
            self.calls[channel_id] = call
        return call

    async def wait_for_connection(self, guild_id: int, within: float = 10.0) -> VoiceConnection:
        """The bot's voice connection in ``guild_id`` once its session description is sent."""

        async def wait() -> VoiceConnection:
            while True:
                connection = self.connections.get(guild_id)
                if connection is not None:
                    await connection.session_ready.wait()
                    if self.connections.get(guild_id) is connection:
                        return connection
                    continue
                event = self._connection_events.setdefault(guild_id, asyncio.Event())
                await event.wait()

        return await asyncio.wait_for(wait(), within)

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"server shutdown")
        for connection in list(self.connections.values()):
            connection.udp.close()
        self.connections.clear()

    async def close_voice(self, guild_id: int, code: int) -> None:
        """Close the bot's voice websocket in ``guild_id`` with ``code`` (4006, 4014 ...)."""
        connection = self.connections.get(guild_id)
        if connection is not None:
            await connection.close(code)

    # --- call membership ---------------------------------------------------------------

    async def on_member_channel_change(
        self, guild: Guild, user: User, before: int | None, after: int | None
    ) -> None:
        sims = self.fake.simulated
        sim = sims.get(user.id)
        if sim is None or before == after:
            return
        if before is not None:
            await self._sim_left(sim, before)
        if after is not None:
            await self._sim_joined(sim, guild.id, after)

    async def _sim_joined(self, sim: SimulatedUser, guild_id: int, channel_id: int) -> None:
        call = self.call_for(guild_id, channel_id)
        sim.attach(call)
        for connection in self._bot_connections(channel_id):
            await connection.send_json(CLIENTS_CONNECT, {"user_ids": [str(sim.user.id)]})
        await call.join(sim)

    async def _sim_left(self, sim: SimulatedUser, channel_id: int) -> None:
        call = self.calls.get(channel_id)
        sim.detach()
        for connection in self._bot_connections(channel_id):
            await connection.send_json(CLIENT_DISCONNECT, {"user_id": str(sim.user.id)})
            connection.speaking_sent.discard(sim.ssrc)
        if call is not None:
            await call.leave(sim.user.id)

    def _bot_connections(self, channel_id: int) -> list[VoiceConnection]:
        return [c for c in self.connections.values() if c.channel_id == channel_id and c.ws]

    async def on_bot_left(self, guild_id: int) -> None:
        connection = self.connections.pop(guild_id, None)
        if connection is None:
            return
        await self._detach(connection)
        connection.udp.close()
        connection.closed.set()

    async def _detach(self, connection: VoiceConnection) -> None:
        call = connection.call
        connection.call = None
        if call is not None:
            await call.leave(connection.user_id)

    # --- the websocket -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        self.sockets.add(ws)
        connection: VoiceConnection | None = None
        try:
            await ws.send_str(
                json.dumps(
                    {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms, "v": 8}}
                )
            )
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    connection = await self._on_json(ws, connection, json.loads(message.data))
                elif message.type is WSMsgType.BINARY and connection is not None:
                    await self._on_binary(connection, bytes(message.data))
        finally:
            self.sockets.discard(ws)
            if connection is not None and connection.ws is ws:
                connection.ws = None
                self.fake.recorder.record(
                    "voice_ws_closed", guild_id=connection.guild_id, code=ws.close_code
                )
        return ws

    async def _on_json(
        self, ws: web.WebSocketResponse, connection: VoiceConnection | None, payload: JSON
    ) -> VoiceConnection | None:
        op = payload.get("op")
        data: Any = payload.get("d")
        if op == HEARTBEAT:
            if connection is not None:
                connection.heartbeats += 1
                self.fake.recorder.record("voice_heartbeat", guild_id=connection.guild_id)
            nonce = data.get("t") if isinstance(data, dict) else data
            await ws.send_str(json.dumps({"op": HEARTBEAT_ACK, "d": {"t": nonce}}))
            return connection
        if op == IDENTIFY:
            return await self._identify(ws, data)
        if op == RESUME:
            return await self._resume(ws, data)
        if connection is None:
            await ws.close(code=4003, message=b"Not authenticated.")
            return None
        if op == SELECT_PROTOCOL:
            await self._select_protocol(connection, data)
        elif op == SPEAKING:
            self.fake.recorder.record("voice_speaking", guild_id=connection.guild_id, data=data)
            connection.bot_ssrc_announced.set()
        elif op == CLIENT_CONNECT:
            self.fake.recorder.record(
                "voice_client_connect", guild_id=connection.guild_id, data=data
            )
        elif op == DAVE_TRANSITION_READY and connection.call is not None:
            await connection.call.transition_ready(connection.user_id, int(data["transition_id"]))
        elif op == MLS_INVALID_COMMIT_WELCOME and connection.call is not None:
            connection.key_package = None
            await connection.call.invalid_commit(connection.user_id, int(data["transition_id"]))
        return connection

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> VoiceConnection | None:
        issued = self.tokens.get(str(data.get("token")))
        guild_id = int(data.get("server_id", 0))
        if (
            issued is None
            or issued.guild_id != guild_id
            or issued.session_id != data.get("session_id")
        ):
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        self.fake.recorder.record(
            "voice_identify", guild_id=guild_id, max_dave=data.get("max_dave_protocol_version")
        )
        if self.close_on_identify:
            code = self.close_on_identify.pop(0)
            self.fake.recorder.record("voice_close", guild_id=guild_id, code=code)
            await ws.close(code=code, message=b"fake close on identify")
            return None
        faults = self.fake.controls.voice
        if faults.withhold_ready > 0:
            faults.withhold_ready -= 1
            self.fake.recorder.record("voice_ready_withheld", guild_id=guild_id)
            return None  # heartbeats are still answered; anything else closes with 4003
        previous = self.connections.pop(guild_id, None)
        if previous is not None:
            await self._detach(previous)
            previous.udp.close()
        udp = await VoiceUdp.open(self.fake, self.fake.host)
        connection = VoiceConnection(
            fake=self.fake,
            guild_id=guild_id,
            channel_id=issued.channel_id,
            user_id=int(data["user_id"]),
            session_id=issued.session_id,
            token=issued.token,
            ssrc=self.allocate_ssrc(),
            udp=udp,
            ws=ws,
            dave_version=min(
                self.dave_protocol_version, int(data.get("max_dave_protocol_version") or 0)
            ),
        )
        udp.connection = connection
        self.connections[guild_id] = connection
        await connection.send_json(
            READY,
            {
                "ssrc": connection.ssrc,
                "ip": self.fake.host,
                "port": udp.port,
                "modes": MODES,
                "heartbeat_interval": 1,
                "experiments": [],
            },
        )
        return connection

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> VoiceConnection | None:
        guild_id = int(data.get("server_id", 0))
        connection = self.connections.get(guild_id)
        self.fake.recorder.record("voice_resume", guild_id=guild_id)
        if (
            connection is None
            or connection.session_id != data.get("session_id")
            or connection.token != data.get("token")
        ):
            await ws.close(code=4006, message=b"Session no longer valid.")
            return None
        connection.ws = ws
        await connection.send_json(RESUMED, None)
        return connection

    async def _select_protocol(self, connection: VoiceConnection, data: JSON) -> None:
        mode = data["data"]["mode"]
        if mode not in IMPLEMENTED_MODES:
            log.warning("fake_discord.voice.unsupported_mode", mode=mode)
            await connection.close(4016)
            return
        connection.mode = mode
        connection.secret_key = secrets.token_bytes(32)
        connection.udp.set_key(connection.secret_key)
        self.fake.recorder.record(
            "voice_select_protocol",
            guild_id=connection.guild_id,
            mode=mode,
            address=data["data"].get("address"),
            port=data["data"].get("port"),
        )
        await connection.send_json(
            SESSION_DESCRIPTION,
            {
                "mode": mode,
                "secret_key": list(connection.secret_key),
                "dave_protocol_version": connection.dave_version,
                "audio_codec": "opus",
                "video_codec": "H264",
                "media_session_id": secrets.token_hex(16),
            },
        )
        call = self.call_for(connection.guild_id, connection.channel_id)
        connection.call = call
        others = [uid for uid in call.participants if uid != connection.user_id]
        if others:
            await connection.send_json(CLIENTS_CONNECT, {"user_ids": [str(u) for u in others]})
        connection.session_ready.set()
        event = self._connection_events.pop(connection.guild_id, None)
        if event is not None:
            event.set()
        await call.join(connection, is_bot=True)

    async def _on_binary(self, connection: VoiceConnection, message: bytes) -> None:
        if not message:
            return
        op, body = message[0], message[1:]
        call = connection.call
        if op == MLS_KEY_PACKAGE:
            connection.key_package = body
            self.fake.recorder.record("dave_key_package", guild_id=connection.guild_id)
            if call is not None:
                await call.key_package_changed(connection.user_id)
        elif op == MLS_COMMIT_WELCOME and call is not None:
            await call.commit_welcome(connection.user_id, body)
