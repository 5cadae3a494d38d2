"""Simulated humans: voice-channel members whose speech reaches the bot as real RTP.

Speech (s16le 48 kHz stereo PCM, or a WAV file) is cut into 20 ms frames, Opus-encoded with
``discord.opus.Encoder`` (cached per clip), DAVE-encrypted with the user's own
``davey.DaveSession`` when the call runs DAVE, then framed as RTP with a one-byte header
extension and, on some packets, RTP padding (as Discord sends them) and
transport-encrypted per bot connection. Faults from :class:`Controls` apply per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import davey
import discord.opus
import structlog

from tests.fakes.discord.rtp import build_header, one_byte_extension

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord
    from tests.fakes.discord.voice_call import Call
    from tests.fakes.discord.voice_udp import VoiceUdp
    from tests.fakes.discord.world import Guild, User

log = structlog.get_logger()

FRAME_BYTES = 3840  # 20 ms of s16le 48 kHz stereo
FRAME_SECONDS = 0.02
SAMPLES_PER_FRAME = 960
AUDIO_LEVEL_EXTENSION_ID = 1
PADDING_EVERY = 7  # every 7th packet carries RTP padding

_opus_cache: dict[bytes, list[bytes]] = {}


def encode_pcm(pcm: bytes) -> list[bytes]:
    """20 ms Opus frames for s16le 48 kHz stereo PCM (the last frame zero-padded); cached."""
    digest = hashlib.sha256(pcm).digest()
    cached = _opus_cache.get(digest)
    if cached is not None:
        return cached
    if not discord.opus.is_loaded():
        discord.opus._load_default()
    encoder = discord.opus.Encoder()
    frames = []
    for start in range(0, len(pcm), FRAME_BYTES):
        chunk = pcm[start : start + FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        frames.append(encoder.encode(chunk, SAMPLES_PER_FRAME))
    _opus_cache[digest] = frames
    return frames


def read_wav(path: Path) -> bytes:
    """A 48 kHz 16-bit WAV as stereo PCM (mono is duplicated to both channels)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != 48_000 or wav.getsampwidth() != 2:
            raise ValueError("expected a 48 kHz 16-bit WAV")
        channels = wav.getnchannels()
        data = wav.readframes(wav.getnframes())
    if channels == 2:
        return data
    if channels != 1:
        raise ValueError("expected mono or stereo")
    samples = memoryview(data).cast("h")
    return b"".join(struct.pack("<hh", s, s) for s in samples)


@dataclass
class SendStats:
    """Per simulated user: what was sent and which faults were applied."""

    frames: int = 0
    packets: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    jittered: int = 0
    malformed: int = 0
    truncated: int = 0
    unknown_ssrc: int = 0
    rtcp: int = 0
    padded: int = 0
    dave_encrypted: int = 0
    lateness: list[float] = field(default_factory=list)
    started_at: float = 0.0
    first_sequence: int = 0


class SimulatedUser:
    """A human in a voice channel; also a DAVE participant (see ``voice_call``)."""

    def __init__(self, fake: FakeDiscord, user: User, guild: Guild) -> None:
        self.fake = fake
        self.user = user
        self.guild = guild
        self.ssrc = fake.voice.allocate_ssrc()
        rng = fake.controls.random
        self.sequence = rng.randrange(0, 1 << 16)
        self.timestamp = rng.randrange(0, 1 << 32)
        self.dave: davey.DaveSession | None = None
        self.call: Call | None = None
        self.stats = SendStats()
        self._key_package: bytes | None = None
        self._held: dict[int, bytes] = {}
        self._pending_version: dict[int, int] = {}
        self.encrypting = True  # false after a downgrade to protocol version 0

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def key_package(self) -> bytes | None:
        return self._key_package

    # --- call membership ---------------------------------------------------------------

    def attach(self, call: Call) -> None:
        self.call = call
        self.encrypting = True
        if call.dave_version > 0:
            self.dave = davey.DaveSession(call.dave_version, self.user.id, call.channel_id)
            self._key_package = self.dave.get_serialized_key_package()

    def detach(self) -> None:
        self.call = None
        self.dave = None
        self._key_package = None

    # --- DAVE participant --------------------------------------------------------------

    async def dave_external_sender(self, package: bytes) -> None:
        if self.dave is not None:
            self.dave.set_external_sender(package)

    async def dave_proposals(self, body: bytes, *, commit_expected: bool) -> None:
        if self.dave is None or self.call is None:
            return
        operation = (
            davey.ProposalsOperationType.append
            if body[0] == 0
            else davey.ProposalsOperationType.revoke
        )
        result = self.dave.process_proposals(operation, body[1:])
        if commit_expected and isinstance(result, davey.CommitWelcome):
            data = result.commit + (result.welcome or b"")
            self.fake.spawn(self.call.commit_welcome(self.user.id, data))

    async def dave_commit(self, transition_id: int, commit: bytes) -> None:
        if self.dave is None:
            return
        try:
            self.dave.process_commit(commit)
        except ValueError:
            log.warning("fake_discord.sim.commit_failed", user_id=self.user.id)
            self.fake.recorder.record("sim_commit_failed", user_id=self.user.id)

    async def dave_welcome(self, transition_id: int, welcome: bytes) -> None:
        if self.dave is None:
            return
        try:
            self.dave.process_welcome(welcome)
        except ValueError:
            log.warning("fake_discord.sim.welcome_failed", user_id=self.user.id)
            self.fake.recorder.record("sim_welcome_failed", user_id=self.user.id)

    async def dave_execute_transition(self, transition_id: int) -> None:
        version = self._pending_version.pop(transition_id, None)
        if version is not None:
            self.encrypting = version > 0

    async def dave_prepare_transition(self, transition_id: int, version: int) -> None:
        self._pending_version[transition_id] = version
        if self.dave is not None and version == 0:
            self.dave.set_passthrough_mode(True, 120)

    async def dave_prepare_epoch(self, epoch: int, version: int) -> None:
        if self.dave is not None and self.call is not None:
            self.dave.reinit(version, self.user.id, self.call.channel_id)
            self._key_package = self.dave.get_serialized_key_package()

    # --- speech ------------------------------------------------------------------------

    def _targets(self) -> list[VoiceUdp]:
        if self.call is None:
            return []
        return [
            connection.udp
            for connection in self.fake.voice.connections.values()
            if connection.channel_id == self.call.channel_id and connection.udp.send_cipher
        ]

    async def speak(self, pcm: bytes, *, realtime: bool = True) -> SendStats:
        """Send ``pcm`` (s16le 48 kHz stereo) as RTP to every bot connection in the call."""
        return await self.speak_opus(encode_pcm(pcm), realtime=realtime)

    async def speak_wav(self, path: Path, *, realtime: bool = True) -> SendStats:
        return await self.speak(read_wav(path), realtime=realtime)

    async def speak_opus(self, frames: list[bytes], *, realtime: bool = True) -> SendStats:
        """Send pre-encoded Opus frames; real time goes through the fake's shared pacer."""
        for connection in list(self.fake.voice.connections.values()):
            if self.call is not None and connection.channel_id == self.call.channel_id:
                await connection.announce_speaking(self)
        self.stats.first_sequence = self.sequence
        if realtime:
            await self.fake.pacer.play(self, frames)
        else:
            self.stats.started_at = time.monotonic()
            for index, opus in enumerate(frames):
                self.send_frame(opus, marker=index == 0)
        self.flush()
        return self.stats

    def flush(self) -> None:
        """Release packets still held back by the reordering fault."""
        for udp in self._targets():
            held = self._held.pop(id(udp), None)
            if held is not None:
                udp.send(held)
                self.stats.packets += 1

    def send_frame(self, opus: bytes, *, marker: bool = False) -> None:
        """One 20 ms frame to every bot connection in the call (advances seq/timestamp)."""
        frame = opus
        if self.encrypting and self.dave is not None and self.dave.ready:
            frame = self.dave.encrypt_opus(opus)
            self.stats.dave_encrypted += 1
        self.stats.frames += 1
        padding = b""
        if self.sequence % PADDING_EVERY == 0:
            pad = 1 + self.sequence % 15
            padding = bytes(pad - 1) + bytes([pad])
            self.stats.padded += 1
        header = build_header(
            sequence=self.sequence,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            padding=bool(padding),
            extension=True,
            marker=marker,
        )
        preamble, ext_body = one_byte_extension([(AUDIO_LEVEL_EXTENSION_ID, bytes([0x80 | 30]))])
        plaintext = ext_body + frame + padding
        for udp in self._targets():
            cipher = udp.send_cipher
            assert cipher is not None
            packet = cipher.encrypt(header + preamble, plaintext)
            self._deliver(udp, packet, header + preamble, plaintext)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF

    def _deliver(self, udp: VoiceUdp, packet: bytes, aad: bytes, plaintext: bytes) -> None:
        faults = self.fake.controls.packets
        if not faults.any_active():
            udp.send(packet)
            self.stats.packets += 1
            return
        self._extras(udp, aad, plaintext)
        damaged = self._damage(packet)
        if damaged is None:
            return
        self._send_ordered(udp, damaged)

    def _extras(self, udp: VoiceUdp, aad: bytes, plaintext: bytes) -> None:
        """Unknown-SSRC copies (validly encrypted) and RTCP packets, sent alongside."""
        faults = self.fake.controls.packets
        chance = self.fake.controls.chance
        if chance(faults.unknown_ssrc):
            self.stats.unknown_ssrc += 1
            rogue = bytearray(aad)
            struct.pack_into(
                ">I", rogue, 8, 0x7FFF0000 | self.fake.controls.random.randrange(1 << 16)
            )
            assert udp.send_cipher is not None
            udp.send(udp.send_cipher.encrypt(bytes(rogue), plaintext))
        if chance(faults.rtcp):
            self.stats.rtcp += 1
            udp.send(bytes([0x80, 200, 0, 6]) + struct.pack(">I", self.ssrc) + bytes(20))

    def _damage(self, packet: bytes) -> bytes | None:
        """Loss (None), corrupted ciphertext or truncation."""
        faults = self.fake.controls.packets
        chance = self.fake.controls.chance
        if chance(faults.loss):
            self.stats.lost += 1
            return None
        if chance(faults.malformed):
            self.stats.malformed += 1
            corrupt = bytearray(packet)
            for offset in range(16, len(corrupt) - 4, 5):
                corrupt[offset] ^= 0xA5
            return bytes(corrupt)
        if chance(faults.truncated):
            self.stats.truncated += 1
            return packet[: self.fake.controls.random.randrange(1, len(packet))]
        return packet

    def _send_ordered(self, udp: VoiceUdp, packet: bytes) -> None:
        """Duplication, reordering (hold one packet back) and jitter (delayed sends)."""
        faults = self.fake.controls.packets
        chance = self.fake.controls.chance
        key = id(udp)
        copies = 2 if chance(faults.duplicate) else 1
        if copies == 2:
            self.stats.duplicated += 1
        if key not in self._held and chance(faults.reorder):
            self.stats.reordered += 1
            self._held[key] = packet
            return
        held = self._held.pop(key, None)
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            if faults.jitter > 0:
                self.stats.jittered += 1
                loop.call_later(
                    self.fake.controls.random.random() * faults.jitter, udp.send, packet
                )
            else:
                udp.send(packet)
            self.stats.packets += 1
        if held is not None:
            udp.send(held)
            self.stats.packets += 1


@dataclass
class _Stream:
    sim: SimulatedUser
    frames: list[bytes]
    done: asyncio.Future[None]
    slot: int
    index: int = 0


class Pacer:
    """One clock for every real-time speaker of a fake.

    A single task wakes ``SLOTS`` times per 20 ms frame period; each stream is given a slot
    (round robin), so speakers' frames are spread over the period as real, unsynchronised
    speakers' are, and 100 speakers cost 200 wake-ups a second rather than 5,000. Each
    stream sends exactly one frame per period; lateness is the send time minus the frame's
    due time, and the pacer never skips frames when it falls behind.
    """

    SLOTS = 4

    def __init__(self) -> None:
        self._streams: list[_Stream] = []
        self._task: asyncio.Task[None] | None = None
        self._next_slot = 0

    async def play(self, sim: SimulatedUser, frames: list[bytes]) -> None:
        if not frames:
            return
        loop = asyncio.get_running_loop()
        stream = _Stream(sim, frames, loop.create_future(), slot=self._next_slot)
        self._next_slot = (self._next_slot + 1) % self.SLOTS
        self._streams.append(stream)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await stream.done

    async def _run(self) -> None:
        step = FRAME_SECONDS / self.SLOTS
        due = time.monotonic()
        slot = 0
        while self._streams:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for stream in [s for s in self._streams if s.slot == slot]:
                if stream.index == 0:
                    stream.sim.stats.started_at = due
                stream.sim.stats.lateness.append(max(0.0, time.monotonic() - due))
                stream.sim.send_frame(stream.frames[stream.index], marker=stream.index == 0)
                stream.index += 1
                if stream.index == len(stream.frames):
                    self._streams.remove(stream)
                    if not stream.done.done():
                        stream.done.set_result(None)
            due += step
            slot = (slot + 1) % self.SLOTS

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for stream in self._streams:
            stream.done.cancel()
        self._streams.clear()
