"""RTP as Discord voice sends it: header parsing and the datagrams to ignore."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
FIXED_HEADER_LENGTH = 12
OPUS_PAYLOAD_TYPE = 0x78
KEEPALIVE_LENGTH = 8
# Discord's RTCP shares the port; its second byte (marker bit + type) is 200-204.
_RTCP_PACKET_TYPES = range(200, 205)


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet."""


@dataclass(frozen=True, slots=True)
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
    def length(self) -> int:
        """Fixed header plus CSRC list (the extension preamble, if any, follows)."""
        return FIXED_HEADER_LENGTH + 4 * self.csrc_count


def parse_header(packet: bytes) -> RtpHeader:
    if len(packet) < FIXED_HEADER_LENGTH:
        raise RtpError(f"{len(packet)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = struct.unpack_from(">BBHII", packet)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    header = RtpHeader(
        padding=bool(first & 0x20),
        extension=bool(first & 0x10),
        csrc_count=first & 0x0F,
        marker=bool(second & 0x80),
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
    )
    if len(packet) < header.length + (4 if header.extension else 0):
        raise RtpError("truncated RTP header")
    return header


def is_rtcp(packet: bytes) -> bool:
    return len(packet) >= 2 and packet[1] in _RTCP_PACKET_TYPES


def is_keepalive(packet: bytes) -> bool:
    return len(packet) == KEEPALIVE_LENGTH
