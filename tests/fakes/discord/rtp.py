"""RTP framing and the ``aead_xchacha20_poly1305_rtpsize`` transport encryption."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import nacl.secret

RTP_VERSION = 2
OPUS_PAYLOAD_TYPE = 0x78
EXTENSION_PROFILE_ONE_BYTE = 0xBEDE
DAVE_MAGIC = b"\xfa\xfa"
IP_DISCOVERY_LENGTH = 74


class RtpError(ValueError):
    """The datagram is not a well-formed RTP packet of the expected shape."""


@dataclass(frozen=True)
class RtpHeader:
    padding: bool
    extension: bool
    csrc_count: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int

    @property
    def fixed_length(self) -> int:
        return 12 + 4 * self.csrc_count


def parse_header(packet: bytes) -> RtpHeader:
    if len(packet) < 12:
        raise RtpError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = struct.unpack_from(">BBHII", packet)
    if first >> 6 != RTP_VERSION:
        raise RtpError("not RTP version 2")
    return RtpHeader(
        padding=bool(first & 0x20),
        extension=bool(first & 0x10),
        csrc_count=first & 0x0F,
        marker=bool(second & 0x80),
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
    )


def is_rtcp(packet: bytes) -> bool:
    """RTCP shares the port; its second byte is a packet type 200-204."""
    return len(packet) >= 2 and 200 <= packet[1] <= 204


def build_header(
    *,
    sequence: int,
    timestamp: int,
    ssrc: int,
    padding: bool = False,
    extension: bool = False,
    marker: bool = False,
    payload_type: int = OPUS_PAYLOAD_TYPE,
) -> bytes:
    first = (RTP_VERSION << 6) | (0x20 if padding else 0) | (0x10 if extension else 0)
    second = (0x80 if marker else 0) | payload_type
    return struct.pack(">BBHII", first, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)


def one_byte_extension(elements: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    """RFC 8285 one-byte header extension → (4-byte preamble, body padded to 32 bits)."""
    body = bytearray()
    for ext_id, value in elements:
        body.append((ext_id << 4) | (len(value) - 1))
        body.extend(value)
    while len(body) % 4:
        body.append(0)
    preamble = struct.pack(">HH", EXTENSION_PROFILE_ONE_BYTE, len(body) // 4)
    return preamble, bytes(body)


class TransportCipher:
    """XChaCha20-Poly1305 with the rtpsize AAD rule and a 4-byte incrementing nonce."""

    def __init__(self, secret_key: bytes) -> None:
        self._box = nacl.secret.Aead(secret_key)
        self._nonce = 0

    def encrypt(self, aad: bytes, plaintext: bytes) -> bytes:
        nonce = struct.pack(">I", self._nonce)
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        sealed = self._box.encrypt(plaintext, aad, nonce + bytes(20)).ciphertext
        return aad + sealed + nonce

    def decrypt(self, packet: bytes) -> tuple[RtpHeader, bytes]:
        """Authenticate and decrypt; returns the header and the Opus (or DAVE) frame.

        The rtpsize AAD is the fixed header plus the 4-byte extension preamble; the
        decrypted plaintext starts with the extension body and ends with RTP padding.
        """
        header = parse_header(packet)
        aad_length = header.fixed_length + (4 if header.extension else 0)
        if len(packet) < aad_length + 16 + 4:
            raise RtpError("too short for rtpsize AEAD")
        aad = packet[:aad_length]
        nonce = packet[-4:] + bytes(20)
        plaintext = self._box.decrypt(packet[aad_length:-4], aad, nonce)
        start = 0
        if header.extension:
            (words,) = struct.unpack_from(">H", packet, header.fixed_length + 2)
            start = words * 4
        end = len(plaintext)
        if header.padding:
            if end == 0:
                raise RtpError("padding bit set on an empty payload")
            end -= plaintext[-1]
        if end < start:
            raise RtpError("padding longer than the payload")
        return header, plaintext[start:end]


def ip_discovery_response(request: bytes, address: tuple[str, int]) -> bytes | None:
    """The 74-byte reply to an IP discovery request (type 1), or None if it is not one."""
    if len(request) != IP_DISCOVERY_LENGTH or struct.unpack_from(">H", request)[0] != 1:
        return None
    (ssrc,) = struct.unpack_from(">I", request, 4)
    reply = bytearray(IP_DISCOVERY_LENGTH)
    struct.pack_into(">HHI", reply, 0, 2, 70, ssrc)
    host = address[0].encode("ascii")
    reply[8 : 8 + len(host)] = host
    struct.pack_into(">H", reply, IP_DISCOVERY_LENGTH - 2, address[1])
    return bytes(reply)
