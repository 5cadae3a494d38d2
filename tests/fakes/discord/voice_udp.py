"""The UDP side of one bot voice connection: IP discovery, receiving and sending RTP."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import davey
import discord.opus
import nacl.exceptions
import structlog

from tests.fakes.discord.capture import Capture, CapturedFrame, now, opus_decoder
from tests.fakes.discord.rtp import (
    DAVE_MAGIC,
    OPUS_PAYLOAD_TYPE,
    RtpError,
    TransportCipher,
    ip_discovery_response,
    is_rtcp,
)

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord
    from tests.fakes.discord.voice_gateway import VoiceConnection

log = structlog.get_logger()

OPUS_SILENCE = b"\xf8\xff\xfe"


class VoiceUdp(asyncio.DatagramProtocol):
    """Bound to 127.0.0.1 on an ephemeral port; learns the bot's address from IP discovery."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.remote: tuple[str, int] | None = None
        self.capture = Capture()
        self.connection: VoiceConnection | None = None
        self.send_cipher: TransportCipher | None = None
        self._recv_cipher: TransportCipher | None = None
        self._decoder: discord.opus.Decoder | None = None
        self.discovered = asyncio.Event()
        self.sent_packets = 0

    @classmethod
    async def open(cls, fake: FakeDiscord, host: str) -> VoiceUdp:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(lambda: cls(fake), local_addr=(host, 0))
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = int(transport.get_extra_info("sockname")[1])

    def set_key(self, secret_key: bytes) -> None:
        self.send_cipher = TransportCipher(secret_key)
        self._recv_cipher = TransportCipher(secret_key)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def send(self, packet: bytes) -> None:
        if self.transport is not None and self.remote is not None:
            self.transport.sendto(packet, self.remote)
            self.sent_packets += 1

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = ip_discovery_response(data, addr)
        if reply is not None:
            self.remote = addr
            if self.transport is not None:
                self.transport.sendto(reply, addr)
            self.discovered.set()
            return
        if len(data) <= 8:
            return  # keepalive
        if is_rtcp(data):
            self.capture.stats.rtcp += 1
            return
        self._receive_rtp(data)

    def _receive_rtp(self, data: bytes) -> None:
        stats = self.capture.stats
        stats.packets += 1
        cipher = self._recv_cipher
        if cipher is None:
            stats.transport_failures += 1
            return
        try:
            header, frame = cipher.decrypt(data)
        except (RtpError, nacl.exceptions.CryptoError):
            stats.transport_failures += 1
            return
        if header.payload_type != OPUS_PAYLOAD_TYPE:
            return
        dave_encrypted = frame.endswith(DAVE_MAGIC) and frame != OPUS_SILENCE
        if dave_encrypted:
            opus = self._dave_decrypt(frame)
            if opus is None:
                stats.dave_failures += 1
                return
            stats.dave_frames += 1
        else:
            opus = frame
            stats.passthrough_frames += 1
        if opus == OPUS_SILENCE:
            stats.silence_frames += 1
        if self._decoder is None:
            self._decoder = opus_decoder()
        try:
            pcm = self._decoder.decode(opus, fec=False)
        except discord.opus.OpusError:
            stats.decode_failures += 1
            return
        self.capture.add(
            CapturedFrame(
                arrival=now(),
                sequence=header.sequence,
                rtp_timestamp=header.timestamp,
                pcm=pcm,
                dave_encrypted=dave_encrypted,
            )
        )

    def _dave_decrypt(self, frame: bytes) -> bytes | None:
        """Decrypt the bot's DAVE frame as a simulated member of the call would."""
        connection = self.connection
        if connection is None or connection.call is None:
            return None
        for user_id in connection.call.members():
            sim = self.fake.simulated.get(user_id)
            if sim is None or sim.dave is None or not sim.dave.ready:
                continue
            try:
                result: bytes = sim.dave.decrypt(connection.user_id, davey.MediaType.audio, frame)
            except ValueError:
                continue
            return result
        return None
