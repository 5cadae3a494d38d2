"""Hearing each user separately: Discord voice packets in, per-user Opus packets out.

A thin layer on discord.py 2.7.1's own voice connection (no fork): the connection's
socket listener hands us raw UDP datagrams on discord.py's socket-reader thread, where we
parse RTP, remove the transport encryption, strip the header extension and padding and
remove DAVE's end-to-end encryption with the connection's own davey session — in the
order that works (see docs/architecture.md). Packets are batched over to the event loop
for the audio path. Nothing raised here may reach discord.py's thread: every bad packet is
dropped and counted by reason, and a sustained run of DAVE failures asks for a rejoin, as
Discord's own clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import davey
import structlog

from openclaw_voice.audio.packets import OpusPacket
from openclaw_voice.discord.rtp import (
    OPUS_PAYLOAD_TYPE,
    RtpError,
    is_keepalive,
    is_rtcp,
    parse_header,
)
from openclaw_voice.discord.transport import DecryptError, TransportDecryptor
from openclaw_voice.ops.metrics import Metrics

log = structlog.get_logger(__name__)

# Discord sends this Opus "silence" frame around speech; DAVE leaves it unencrypted.
OPUS_SILENCE_FRAME = b"\xf8\xff\xfe"
# Voice gateway opcodes this layer listens to.
OP_SPEAKING = 5
OP_CLIENTS_CONNECT = 11
OP_CLIENT_DISCONNECT = 13

PENDING_PACKETS_PER_SSRC = 25  # 0.5 s of audio held until SPEAKING names the SSRC
PENDING_SSRCS = 16
DROP_LOG_INTERVAL = 5.0


class PacketSink(Protocol):
    """Where per-user packets go; called on the event loop, never on the socket thread."""

    def on_packet(self, user_id: int, packet: OpusPacket) -> None: ...

    def on_user_left(self, user_id: int) -> None: ...


class VoiceConnection(Protocol):
    """The parts of discord.py's VoiceConnectionState this layer reads."""

    @property
    def ssrc(self) -> int: ...

    @property
    def mode(self) -> object: ...  # str, or discord.utils.MISSING before the session key

    @property
    def secret_key(self) -> object: ...  # list[int], or MISSING

    @property
    def dave_protocol_version(self) -> int: ...

    @property
    def dave_session(self) -> Any: ...

    def add_socket_listener(self, callback: Callable[[bytes], Any]) -> None: ...

    def remove_socket_listener(self, callback: Callable[[bytes], Any]) -> None: ...


@dataclass
class SsrcMap:
    """SSRC ↔ user id, learned from the voice gateway's SPEAKING and client events."""

    by_ssrc: dict[int, int] = field(default_factory=dict)

    def learn(self, ssrc: int, user_id: int) -> None:
        self.by_ssrc[ssrc] = user_id

    def forget_user(self, user_id: int) -> list[int]:
        gone = [ssrc for ssrc, user in self.by_ssrc.items() if user == user_id]
        for ssrc in gone:
            del self.by_ssrc[ssrc]
        return gone

    def user(self, ssrc: int) -> int | None:
        return self.by_ssrc.get(ssrc)


class ReceiveStats:
    """Thread-safe counters of received and dropped packets, by reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, reason: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[reason] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class VoiceReceiver:
    """Receives one voice connection's audio and delivers it per user to a sink."""

    def __init__(
        self,
        connection: VoiceConnection,
        *,
        loop: asyncio.AbstractEventLoop,
        max_decrypt_failures: int = 24,
        on_decrypt_failures: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self.ssrc_map = SsrcMap()
        self._sink: PacketSink | None = None
        self._loop = loop
        self._max_decrypt_failures = max_decrypt_failures
        self.on_decrypt_failures = on_decrypt_failures
        self.metrics = metrics  # set by the session manager before listening
        self._clock = clock
        self.stats = ReceiveStats()
        self._decryptor: TransportDecryptor | None = None
        self._decryptor_source: tuple[str, bytes] | None = None
        self._failure_runs: Counter[int] = Counter()
        self._pending: OrderedDict[int, deque[bytes]] = OrderedDict()
        self._pending_lock = threading.Lock()
        self._outbox: deque[tuple[int, OpusPacket]] = deque()
        self._drain_scheduled = False
        self._outbox_lock = threading.Lock()
        self._last_drop_log: dict[str, float] = {}
        self._listening = False

    # --- lifecycle (event loop) ------------------------------------------------------

    def start(self, sink: PacketSink) -> None:
        """Start delivering packets to ``sink`` (SSRCs seen before are already known)."""
        self._sink = sink
        if not self._listening:
            self._connection.add_socket_listener(self.on_datagram)
            self._listening = True

    def stop(self) -> None:
        if self._listening:
            self._connection.remove_socket_listener(self.on_datagram)
            self._listening = False
        self._sink = None

    def on_ws_message(self, message: dict[str, Any]) -> None:
        """Voice gateway JSON messages (via the voice client's hook): who has which SSRC."""
        op = message.get("op")
        data = message.get("d")
        if not isinstance(data, dict):
            return
        try:
            if op == OP_SPEAKING:
                ssrc, user_id = int(data["ssrc"]), int(data["user_id"])
                if ssrc != self._connection.ssrc:
                    self.ssrc_map.learn(ssrc, user_id)
                    self._replay_held(ssrc, user_id)
            elif op == OP_CLIENT_DISCONNECT:
                user_id = int(data["user_id"])
                for ssrc in self.ssrc_map.forget_user(user_id):
                    self._failure_runs.pop(ssrc, None)
                if self._sink is not None:
                    self._sink.on_user_left(user_id)
        except (KeyError, TypeError, ValueError):
            self.stats.add("bad_gateway_message")

    # --- the socket thread -----------------------------------------------------------

    def on_datagram(self, data: bytes) -> None:
        """discord.py's socket-reader thread calls this for every datagram; never raises."""
        try:
            self._receive(data)
        except Exception:  # a bug here must not kill discord.py's reader thread
            self._drop("internal_error")
            log.exception("voice receive failed on a packet")

    def _receive(self, data: bytes) -> None:
        if is_keepalive(data) or is_rtcp(data):
            self.stats.add("ignored")
            return
        try:
            header = parse_header(data)
        except RtpError:
            self._drop("malformed")
            return
        if header.payload_type != OPUS_PAYLOAD_TYPE:
            self.stats.add("ignored")
            return
        if header.ssrc == self._connection.ssrc:
            return  # our own audio echoed back is never a user
        decryptor = self._current_decryptor()
        if decryptor is None:
            self._drop("no_key")
            return
        user_id = self.ssrc_map.user(header.ssrc)
        if user_id is None:
            self._hold(header.ssrc, data)
            return
        for held in self._release(header.ssrc):
            self._deliver_packet(user_id, decryptor, held)
        self._deliver_packet(user_id, decryptor, data)

    def _deliver_packet(self, user_id: int, decryptor: TransportDecryptor, data: bytes) -> None:
        try:
            header, frame = decryptor.decrypt(data)
        except DecryptError:
            self._drop("transport_decrypt")
            return
        except RtpError:
            self._drop("malformed")
            return
        frame_or_none = self._dave_decrypt(header.ssrc, user_id, frame)
        if frame_or_none is None:
            return
        packet = OpusPacket(header.sequence, header.timestamp, frame_or_none, self._clock())
        self.stats.add("delivered")
        metrics = self.metrics
        if metrics is not None:
            metrics.audio_frames_processed_total.labels(format="opus").inc()
            metrics.audio_bytes_processed_total.labels(format="opus").inc(len(frame_or_none))
        with self._outbox_lock:
            self._outbox.append((user_id, packet))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: we are shutting down
            self._drop("loop_closed")

    def _dave_decrypt(self, ssrc: int, user_id: int, frame: bytes) -> bytes | None:
        session = self._connection.dave_session
        if self._connection.dave_protocol_version == 0 or session is None:
            return frame
        if frame == OPUS_SILENCE_FRAME:
            return frame
        try:
            decrypted: bytes = session.decrypt(user_id, davey.MediaType.audio, frame)
        except Exception as error:  # davey raises plain exceptions naming the cause
            reason = _dave_failure_reason(error)
            self._drop(reason)
            self._failure_runs[ssrc] += 1
            if self._failure_runs[ssrc] >= self._max_decrypt_failures:
                self._failure_runs.clear()
                self._request_rejoin()
            return None
        self._failure_runs.pop(ssrc, None)
        return decrypted

    def _request_rejoin(self) -> None:
        self.stats.add("rejoin_requested")
        log.warning("sustained DAVE decrypt failures; asking to rejoin the voice channel")
        if self.on_decrypt_failures is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: shutting down anyway
                self._loop.call_soon_threadsafe(self.on_decrypt_failures)

    def _current_decryptor(self) -> TransportDecryptor | None:
        key = self._connection.secret_key
        mode = self._connection.mode
        if not isinstance(key, list) or not isinstance(mode, str):
            return None  # discord.py's MISSING before SESSION_DESCRIPTION
        source = (mode, bytes(key))
        if source != self._decryptor_source:
            try:
                self._decryptor = TransportDecryptor(mode, source[1])
            except ValueError:
                self._decryptor = None
            self._decryptor_source = source
        return self._decryptor

    # --- SSRCs we cannot name yet ------------------------------------------------------

    def _hold(self, ssrc: int, data: bytes) -> None:
        """Keep a few packets of an unnamed SSRC: SPEAKING can arrive just after them."""
        with self._pending_lock:
            queue = self._pending.get(ssrc)
            if queue is None:
                if len(self._pending) >= PENDING_SSRCS:
                    _, evicted = self._pending.popitem(last=False)
                    self._drop("unknown_ssrc", len(evicted))
                queue = self._pending[ssrc] = deque()
            if len(queue) >= PENDING_PACKETS_PER_SSRC:
                queue.popleft()
                self._drop("unknown_ssrc")
            queue.append(data)

    def _replay_held(self, ssrc: int, user_id: int) -> None:
        """Deliver what an SSRC sent before SPEAKING named it (on the event loop).

        Whichever comes first — this, or the SSRC's next packet on the socket thread —
        takes the held packets; the jitter buffer restores their order.
        """
        decryptor = self._current_decryptor()
        if decryptor is None:
            return
        for held in self._release(ssrc):
            self._deliver_packet(user_id, decryptor, held)

    def _release(self, ssrc: int) -> deque[bytes] | tuple[()]:
        """Packets held for an SSRC that now has a user, oldest first (socket thread)."""
        if not self._pending:
            return ()
        with self._pending_lock:
            return self._pending.pop(ssrc, None) or ()

    # --- handing over to the event loop --------------------------------------------------

    def _drain(self) -> None:
        with self._outbox_lock:
            batch = list(self._outbox)
            self._outbox.clear()
            self._drain_scheduled = False
        sink = self._sink
        if sink is None:
            return
        for user_id, packet in batch:
            sink.on_packet(user_id, packet)

    def _drop(self, reason: str, amount: int = 1) -> None:
        self.stats.add(reason, amount)
        metrics = self.metrics
        if metrics is not None:
            metrics.audio_frames_dropped_total.labels(reason=reason).inc(amount)
        now = self._clock()
        if now - self._last_drop_log.get(reason, -DROP_LOG_INTERVAL) >= DROP_LOG_INTERVAL:
            self._last_drop_log[reason] = now
            log.debug("voice packets dropped", context={"reason": reason})


def _dave_failure_reason(error: Exception) -> str:
    """The drop reason for a davey decrypt error (davey raises ValueError naming the kind).

    ``NoDecryptorForUser``: no key ratchet for the sender yet (before our Welcome/Commit is
    processed); ``NoValidCryptorFound``: none for the frame's generation (around an epoch
    change). Both are expected for a moment after joining or a transition.
    """
    text = f"{type(error).__name__} {error}"
    if "NoDecryptorForUser" in text:
        return "dave_no_decryptor"
    if "NoValidCryptor" in text:
        return "dave_no_cryptor"
    if "Unencrypted" in text:
        return "dave_unencrypted"
    return "dave_decrypt"
