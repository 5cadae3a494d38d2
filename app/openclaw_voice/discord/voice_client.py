"""discord.py's VoiceClient with our receive layer attached to its own connection."""

from __future__ import annotations

from typing import Any

import discord
from discord.voice_state import VoiceConnectionState

from openclaw_voice.discord.receive import PacketSink, VoiceReceiver


class ListeningVoiceClient(discord.VoiceClient):
    """Connect with ``channel.connect(cls=ListeningVoiceClient)``, then :meth:`listen`.

    The voice websocket hook is installed when the connection state is created, so the
    SSRCs announced before :meth:`listen` is called are known when packets arrive.
    """

    receiver: VoiceReceiver

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.receiver = VoiceReceiver(self._connection, loop=client.loop)

    def create_connection_state(self) -> VoiceConnectionState:
        return VoiceConnectionState(self, hook=self._on_voice_ws_message)

    async def _on_voice_ws_message(self, ws: Any, message: dict[str, Any]) -> None:
        receiver = getattr(self, "receiver", None)
        if receiver is not None:
            receiver.on_ws_message(message)

    def listen(self, sink: PacketSink) -> VoiceReceiver:
        """Start receiving: every user's packets go to ``sink`` on the event loop."""
        self.receiver.start(sink)
        return self.receiver

    async def disconnect(self, *, force: bool = False) -> None:
        self.receiver.stop()
        await super().disconnect(force=force)
