"""A test-local receiver on the bot's UDP socket: decrypts transport and DAVE by hand."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

import discord
import nacl.secret

from tests.fakes.discord import parse_header


@dataclass
class Received:
    ssrc: int
    sequence: int
    timestamp: int
    padded: bool
    extension: bool
    frame: bytes


@dataclass
class UdpProbe:
    """Collects what arrives on the bot's voice socket (called from discord.py's reader
    thread; results are handed to the loop)."""

    voice: discord.VoiceClient
    loop: asyncio.AbstractEventLoop
    raw: list[bytes] = field(default_factory=list)
    packets: list[Received] = field(default_factory=list)
    failures: int = 0
    _waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.voice._connection.add_socket_listener(self._on_packet)

    def close(self) -> None:
        self.voice._connection.remove_socket_listener(self._on_packet)

    def _on_packet(self, data: bytes) -> None:
        self.loop.call_soon_threadsafe(self._handle, bytes(data))

    def _handle(self, data: bytes) -> None:
        self.raw.append(data)
        received = decrypt_transport(bytes(self.voice._connection.secret_key), data)
        if received is None:
            self.failures += 1
        else:
            self.packets.append(received)
        count = len(self.raw)
        for wanted, future in self._waiters:
            if not future.done() and count >= wanted:
                future.set_result(None)

    async def wait_for_raw(self, count: int, within: float = 10.0) -> None:
        if len(self.raw) >= count:
            return
        future: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append((count, future))
        try:
            await asyncio.wait_for(future, within)
        finally:
            future.cancel()


def decrypt_transport(key: bytes, data: bytes) -> Received | None:
    """aead_xchacha20_poly1305_rtpsize as a receiver must do it, independent of the fake."""
    if len(data) < 12 or data[0] >> 6 != 2 or 200 <= data[1] <= 204:
        return None
    try:
        header = parse_header(data)
    except ValueError:
        return None
    fixed = 12 + 4 * header.csrc_count
    aad_end = fixed + (4 if header.extension else 0)
    box = nacl.secret.Aead(key)
    try:
        plain = box.decrypt(data[aad_end:-4], data[:aad_end], data[-4:] + bytes(20))
    except Exception:
        return None
    start = 0
    if header.extension:
        start = struct.unpack_from(">H", data, fixed + 2)[0] * 4
    end = len(plain) - (plain[-1] if header.padding else 0)
    return Received(
        header.ssrc,
        header.sequence,
        header.timestamp,
        header.padding,
        header.extension,
        plain[start:end],
    )
