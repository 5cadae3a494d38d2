"""discord.py's VoiceClient with our receive layer attached to its own connection.

A voice connection that Discord ends (a lost voice session, a crashed voice server) is
reported to the owner, which rejoins with a fresh connection; see :class:`_ConnectionState`
for why discord.py's own in-place reconnect is not used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
import structlog
from discord import opus
from discord.errors import ConnectionClosed
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from openclaw_voice.discord.receive import PacketSink, VoiceReceiver

if TYPE_CHECKING:
    from discord.types.voice import GuildVoiceState as GuildVoiceStatePayload

log = structlog.get_logger(__name__)

# "Voice server crashed": discord.py answers it with a resume we give up at once.
RESUME_CLOSE_CODE = 4015
# Opus complexity of the replies (discord.py keeps libopus' default, 9 with Debian 12's
# libopus). Speech sounds the same at 5 and costs about 40 % less to encode, the largest
# share of the bot's CPU per session (docs/benchmarks.md, "Load and capacity").
REPLY_ENCODER_COMPLEXITY = 5
OPUS_SET_COMPLEXITY = 4010
OPUS_GET_COMPLEXITY = 4011


def set_encoder_complexity(encoder: opus.Encoder, complexity: int) -> None:
    """Set a discord.py encoder's Opus complexity (0-10); discord.py has no setter."""
    opus._lib.opus_encoder_ctl(encoder._state, OPUS_SET_COMPLEXITY, complexity)


class _ConnectionState(VoiceConnectionState):
    """discord.py 2.7.1's connection state, without its in-place reconnect.

    When the voice websocket closes with a code discord.py does not treat as a move or a
    kick (4006 session no longer valid, 4009 session timed out, 1006, a dead websocket),
    discord.py leaves and joins again on the same state, and that join stalls until its
    socket-reader thread gives up a 30 s ``select()`` on the closed UDP socket — longer
    than a join may take, so the connection never comes back. On 4015 it sends op 4 for
    the same channel and waits for a VOICE_SERVER_UPDATE that Discord does not send. Here
    both end the way discord.py ends a connection it will not reconnect (it leaves the
    channel and cleans up) and the voice client reports the close code. Moves, kicks,
    4021/4022 and DAVE are still discord.py's.
    """

    def __init__(
        self, voice_client: ListeningVoiceClient, *, hook: Callable[..., Any] | None
    ) -> None:
        super().__init__(voice_client, hook=hook)
        self._owner = voice_client

    async def _voice_disconnect(self) -> None:
        # discord.py leaves right after a close it does not reconnect from: keep its code
        # (closing our side later overwrites the socket's).
        socket = getattr(self.ws, "ws", None)
        code = getattr(socket, "close_code", None)
        if code is not None:
            self._owner.close_code = int(code)
        # Before op 4 goes out, so the echo of our own leave is never taken for a kick.
        self._owner.leave_pending = True
        await super()._voice_disconnect()

    async def _connect(
        self,
        reconnect: bool,
        timeout: float,  # noqa: ASYNC109 (discord.py's signature)
        self_deaf: bool,
        self_mute: bool,
        resume: bool,
    ) -> None:
        if resume:  # only discord.py's answer to 4015 resumes: give up at once instead
            self._owner.close_code = RESUME_CLOSE_CODE
            raise TimeoutError
        await super()._connect(reconnect, timeout, self_deaf, self_mute, resume)

    async def _poll_voice_ws(self, reconnect: bool) -> None:
        code: int | None
        try:
            await super()._poll_voice_ws(False)  # False: never reconnect in place
        except ConnectionClosed as error:  # discord.py has left the channel already
            code = int(error.code)
        except TimeoutError:  # no message for 30 s
            code = None
        except Exception as error:  # whatever ended it, the bot must rejoin
            # discord.py lets other errors end its poller without leaving: e.g. its DAVE
            # handler answering a commit on a websocket Discord is closing (4015).
            log.warning(
                "voice websocket failed",
                guildId=str(self._owner.guild.id),
                error=f"{type(error).__name__}: {error}",
            )
            if self.state is not ConnectionFlowState.disconnected:
                await self.disconnect()
            code = self._owner.close_code
        else:
            if self.state is not ConnectionFlowState.disconnected:
                return  # cancelled by a move or a soft disconnect: discord.py carries on
            code = self._owner.close_code
        self._owner.connection_ended(code)


class ListeningVoiceClient(discord.VoiceClient):
    """Connect with ``channel.connect(cls=ListeningVoiceClient)``, then :meth:`listen`.

    The voice websocket hook is installed when the connection state is created, so the
    SSRCs announced before :meth:`listen` is called are known when packets arrive.
    ``on_connection_lost(close_code)`` is called (on the event loop) when Discord ended the
    connection without removing the bot from its channel; ``removed`` tells that Discord
    or a moderator took the bot out of the channel.
    """

    receiver: VoiceReceiver

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.receiver = VoiceReceiver(self._connection, loop=client.loop)
        self.on_connection_lost: Callable[[int | None], None] | None = None
        self.removed = False
        self.leave_pending = False
        self.close_code: int | None = None
        self._leaving = False

    @property
    def encoder(self) -> opus.Encoder:
        return self._reply_encoder

    @encoder.setter
    def encoder(self, encoder: opus.Encoder) -> None:
        # discord.py's play() makes a new encoder for every source, before its player
        # thread starts: set its complexity then, while nothing encodes with it.
        if isinstance(encoder, opus.Encoder):
            set_encoder_complexity(encoder, REPLY_ENCODER_COMPLEXITY)
        self._reply_encoder = encoder

    def create_connection_state(self) -> VoiceConnectionState:
        return _ConnectionState(self, hook=self._on_voice_ws_message)

    async def _on_voice_ws_message(self, ws: Any, message: dict[str, Any]) -> None:
        receiver = getattr(self, "receiver", None)
        if receiver is not None:
            receiver.on_ws_message(message)

    async def on_voice_state_update(self, data: GuildVoiceStatePayload) -> None:
        # Runs before the client's voice_state_update event (discord.py schedules it first).
        if not data.get("channel_id"):  # null when the bot is out of voice
            if self.leave_pending:
                self.leave_pending = False  # the echo of our own leave
            else:
                self.removed = True  # kicked, or the channel is gone
        await super().on_voice_state_update(data)

    def connection_ended(self, code: int | None) -> None:
        """discord.py ended the connection (see :class:`_ConnectionState`)."""
        self.receiver.stop()
        if self._leaving or self.removed:
            return
        log.warning(
            "voice connection lost",
            guildId=str(self.guild.id),
            context={"close_code": code, "channel_id": str(self.channel.id)},
        )
        if self.on_connection_lost is not None:
            self.on_connection_lost(code)

    def listen(self, sink: PacketSink) -> VoiceReceiver:
        """Start receiving: every user's packets go to ``sink`` on the event loop."""
        self.receiver.start(sink)
        return self.receiver

    async def disconnect(self, *, force: bool = False) -> None:
        self._leaving = True
        self.receiver.stop()
        if self.client.get_guild(self.guild.id) is not None:
            await super().disconnect(force=force)
            return
        # Removed from the guild (GUILD_DELETE): discord.py would wait a whole connect
        # timeout for the VOICE_STATE_UPDATE confirming the leave, which never comes (it
        # drops events of guilds it no longer has). Leave without waiting for it.
        self.stop()
        await self._connection.disconnect(force=force, wait=False)
        self.cleanup()
