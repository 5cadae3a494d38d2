"""The receive layer on packets built by the fake Discord's independent RTP code."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from openclaw_voice.audio.packets import OpusPacket
from openclaw_voice.discord.receive import (
    OP_CLIENT_DISCONNECT,
    OP_SPEAKING,
    OPUS_SILENCE_FRAME,
    PENDING_PACKETS_PER_SSRC,
    PENDING_SSRCS,
    VoiceReceiver,
    _dave_failure_reason,
)
from openclaw_voice.discord.transport import XCHACHA_RTPSIZE, TransportDecryptor
from openclaw_voice.ops.metrics import Metrics
from tests.fakes.discord.rtp import TransportCipher, build_header, one_byte_extension

KEY = bytes(range(32))
BOT_SSRC = 1
ALICE_SSRC, ALICE = 1001, 111111111111111111
BOB_SSRC, BOB = 1002, 222222222222222222


@dataclass
class FakeConnection:
    """Stands in for discord.py's VoiceConnectionState (the attributes the layer reads)."""

    ssrc: int = BOT_SSRC
    mode: object = XCHACHA_RTPSIZE
    secret_key: object = field(default_factory=lambda: list(KEY))
    dave_protocol_version: int = 0
    dave_session: Any = None
    listeners: list[Any] = field(default_factory=list)

    def add_socket_listener(self, callback: Any) -> None:
        self.listeners.append(callback)

    def remove_socket_listener(self, callback: Any) -> None:
        self.listeners.remove(callback)


class RecordingSink:
    def __init__(self) -> None:
        self.packets: list[tuple[int, OpusPacket]] = []
        self.left: list[int] = []
        self.arrived = asyncio.Event()

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        self.packets.append((user_id, packet))
        self.arrived.set()

    def on_user_left(self, user_id: int) -> None:
        self.left.append(user_id)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.packets) < count:
                self.arrived.clear()
                await self.arrived.wait()


def packet(
    ssrc: int,
    sequence: int,
    payload: bytes,
    *,
    key: bytes = KEY,
    extension: bool = True,
    padding: int = 0,
    payload_type: int = 0x78,
) -> bytes:
    header = build_header(
        sequence=sequence,
        timestamp=sequence * 960,
        ssrc=ssrc,
        padding=padding > 0,
        extension=extension,
        payload_type=payload_type,
    )
    preamble, body = one_byte_extension([(1, b"\x10\x20\x30")]) if extension else (b"", b"")
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    return TransportCipher(key).encrypt(header + preamble, body + payload + pad)


def speaking(ssrc: int, user_id: int) -> dict[str, Any]:
    return {"op": OP_SPEAKING, "d": {"ssrc": ssrc, "user_id": str(user_id), "speaking": 1}}


@pytest.fixture
def connection() -> FakeConnection:
    return FakeConnection()


@pytest.fixture
async def receiver(connection: FakeConnection) -> VoiceReceiver:
    return VoiceReceiver(connection, loop=asyncio.get_running_loop(), metrics=Metrics())


@pytest.fixture
def sink(receiver: VoiceReceiver) -> RecordingSink:
    recording = RecordingSink()
    receiver.start(recording)
    return recording


@pytest.mark.parametrize(("extension", "padding"), [(False, 0), (True, 0), (True, 7), (False, 1)])
async def test_delivers_payload_with_extension_and_padding_stripped(
    receiver: VoiceReceiver, sink: RecordingSink, extension: bool, padding: int
) -> None:
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_datagram(packet(ALICE_SSRC, 7, b"opus-frame", extension=extension, padding=padding))
    await sink.wait_for(1)
    user, received = sink.packets[0]
    assert user == ALICE
    assert (received.sequence, received.timestamp, received.payload) == (7, 7 * 960, b"opus-frame")
    assert receiver.stats.snapshot()["delivered"] == 1
    assert receiver.metrics is not None
    sample = receiver.metrics.registry.get_sample_value
    assert sample("audio_frames_processed_total", {"format": "opus"}) == 1
    assert sample("audio_bytes_processed_total", {"format": "opus"}) == len(b"opus-frame")


async def test_users_are_told_apart_by_ssrc(receiver: VoiceReceiver, sink: RecordingSink) -> None:
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_ws_message(speaking(BOB_SSRC, BOB))
    for sequence in range(3):
        receiver.on_datagram(packet(ALICE_SSRC, sequence, b"a%d" % sequence))
        receiver.on_datagram(packet(BOB_SSRC, sequence, b"b%d" % sequence))
    await sink.wait_for(6)
    by_user = {user: [p.payload for u, p in sink.packets if u == user] for user in (ALICE, BOB)}
    assert by_user == {ALICE: [b"a0", b"a1", b"a2"], BOB: [b"b0", b"b1", b"b2"]}


async def test_packets_before_speaking_are_held_then_delivered_in_order(
    receiver: VoiceReceiver, sink: RecordingSink
) -> None:
    for sequence in range(3):
        receiver.on_datagram(packet(ALICE_SSRC, sequence, b"early%d" % sequence))
    assert sink.packets == []
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_datagram(packet(ALICE_SSRC, 3, b"late"))
    await sink.wait_for(4)
    assert [p.payload for _, p in sink.packets] == [b"early0", b"early1", b"early2", b"late"]


async def test_unknown_ssrcs_are_bounded_and_counted(
    receiver: VoiceReceiver, sink: RecordingSink
) -> None:
    for sequence in range(PENDING_PACKETS_PER_SSRC + 5):
        receiver.on_datagram(packet(5000, sequence, b"x"))
    for ssrc in range(6000, 6000 + PENDING_SSRCS):
        receiver.on_datagram(packet(ssrc, 0, b"y"))
    counts = receiver.stats.snapshot()
    # 5 overflowed the first SSRC's queue, then its 25 were evicted by the 16 newer SSRCs.
    assert counts["unknown_ssrc"] == 5 + PENDING_PACKETS_PER_SSRC
    assert sink.packets == []


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"\x00" * 8, "ignored"),  # keepalive
        (bytes([0x80, 200]) + bytes(30), "ignored"),  # RTCP sender report
        (b"\x80\x78\x00", "malformed"),  # truncated header
        (bytes([0x40]) + bytes(40), "malformed"),  # RTP version 1
        (os.urandom(3) + bytes(5) + os.urandom(40), "malformed"),
    ],
)
async def test_garbage_is_counted_not_fatal(
    receiver: VoiceReceiver, sink: RecordingSink, datagram: bytes, reason: str
) -> None:
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_datagram(datagram)
    counts = receiver.stats.snapshot()
    assert counts.get(reason, 0) + counts.get("ignored", 0) + counts.get("unknown_ssrc", 0) >= 1
    assert sink.packets == []


async def test_wrong_key_non_opus_and_own_ssrc_are_dropped(
    receiver: VoiceReceiver, sink: RecordingSink
) -> None:
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_datagram(packet(ALICE_SSRC, 1, b"x", key=bytes(32)))
    receiver.on_datagram(packet(ALICE_SSRC, 2, b"x", payload_type=0x60))
    receiver.on_datagram(packet(BOT_SSRC, 3, b"x"))
    counts = receiver.stats.snapshot()
    assert counts["transport_decrypt"] == 1
    assert counts["ignored"] == 1
    assert "delivered" not in counts


async def test_no_session_key_yet(connection: FakeConnection, receiver: VoiceReceiver) -> None:
    connection.secret_key = object()  # discord.py's MISSING sentinel before the key
    receiver.start(RecordingSink())
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_datagram(packet(ALICE_SSRC, 1, b"x"))
    assert receiver.stats.snapshot()["no_key"] == 1


async def test_client_disconnect_forgets_the_user(
    receiver: VoiceReceiver, sink: RecordingSink
) -> None:
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_ws_message({"op": OP_CLIENT_DISCONNECT, "d": {"user_id": str(ALICE)}})
    receiver.on_ws_message({"op": OP_SPEAKING, "d": {"ssrc": "not a number"}})
    assert sink.left == [ALICE]
    assert receiver.ssrc_map.user(ALICE_SSRC) is None
    assert receiver.stats.snapshot()["bad_gateway_message"] == 1


class FlakyDave:
    """A DAVE session whose decrypt fails with davey's error text until told otherwise."""

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0

    def decrypt(self, user_id: int, media_type: object, frame: bytes) -> bytes:
        self.calls += 1
        if self.failing:
            raise RuntimeError("DecryptionFailed(NoValidCryptorFound)")
        return b"clear:" + frame


async def test_dave_failures_are_counted_and_a_run_asks_to_rejoin_once(
    connection: FakeConnection,
) -> None:
    dave = FlakyDave()
    connection.dave_protocol_version = 1
    connection.dave_session = dave
    rejoin = asyncio.Event()
    receiver = VoiceReceiver(
        connection,
        loop=asyncio.get_running_loop(),
        max_decrypt_failures=5,
        on_decrypt_failures=rejoin.set,
    )
    sink = RecordingSink()
    receiver.start(sink)
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    for sequence in range(4):
        receiver.on_datagram(packet(ALICE_SSRC, sequence, b"e2ee"))
    assert not rejoin.is_set()
    dave.failing = False
    receiver.on_datagram(packet(ALICE_SSRC, 4, b"e2ee"))  # a success resets the run
    receiver.on_datagram(packet(ALICE_SSRC, 5, OPUS_SILENCE_FRAME))  # passes through DAVE
    await sink.wait_for(2)
    assert [p.payload for _, p in sink.packets] == [b"clear:e2ee", OPUS_SILENCE_FRAME]
    dave.failing = True
    for sequence in range(6, 11):
        receiver.on_datagram(packet(ALICE_SSRC, sequence, b"e2ee"))
    await asyncio.wait_for(rejoin.wait(), 5)
    counts = receiver.stats.snapshot()
    assert counts["dave_no_cryptor"] == 9
    assert counts["rejoin_requested"] == 1
    assert dave.calls == 10  # the silence frame never went to DAVE


async def test_a_bug_never_escapes_into_the_socket_thread(
    connection: FakeConnection, receiver: VoiceReceiver, sink: RecordingSink
) -> None:
    connection.secret_key = [300] * 32  # not bytes: building the key raises inside the layer
    receiver.on_ws_message(speaking(ALICE_SSRC, ALICE))
    receiver.on_datagram(packet(ALICE_SSRC, 1, b"x"))
    assert receiver.stats.snapshot()["internal_error"] == 1
    connection.mode = 12345  # nonsense mode: no decryptor, counted as no key
    connection.secret_key = list(KEY)
    receiver.on_datagram(packet(ALICE_SSRC, 2, b"x"))
    assert receiver.stats.snapshot()["no_key"] == 1
    assert sink.packets == []


def test_decryptor_rejects_unsupported_mode_and_bad_key() -> None:
    with pytest.raises(ValueError, match="unsupported voice encryption mode"):
        TransportDecryptor("xsalsa20_poly1305", KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        TransportDecryptor(XCHACHA_RTPSIZE, b"short")


async def test_listener_registration_and_stop(
    connection: FakeConnection, receiver: VoiceReceiver
) -> None:
    receiver.start(RecordingSink())
    receiver.start(RecordingSink())
    assert connection.listeners == [receiver.on_datagram]
    receiver.stop()
    assert connection.listeners == []


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("NoDecryptorForUser", "dave_no_decryptor"),
        ("NoValidCryptorFound", "dave_no_cryptor"),
        ("UnencryptedWhenPassthroughDisabled", "dave_unencrypted"),
        ("DecryptionFailed", "dave_decrypt"),
    ],
)
def test_davey_decrypt_errors_get_their_own_reason(kind: str, reason: str) -> None:
    # davey 0.1.7 raises ValueError("Failed to decrypt: <kind>")
    assert _dave_failure_reason(ValueError(f"Failed to decrypt: {kind}")) == reason
