"""Streaming playback: any PCM in, 20 ms 48 kHz stereo frames out, interruptible, normalised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import discord
import numpy as np
import numpy.typing as npt

from openclaw_voice.audio.encode import FRAME_BYTES, SILENCE_FRAME, FrameEncoder, Normalizer
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.discord.playback import PlaybackSettings, StreamingSource, VoicePlayback
from openclaw_voice.ops.metrics import Metrics
from tests.unit.audio.signals import FloatArray, dominant_frequency, to_int16, tone

CEILING = 10 ** (-1 / 20)


def _chunks(audio: FloatArray, rate: int, size: float = 0.1) -> list[PcmAudio]:
    step = int(size * rate)
    pcm = to_int16(audio)
    return [PcmAudio(pcm[i : i + step].tobytes(), rate, 1) for i in range(0, len(pcm), step)]


async def _stream(chunks: list[PcmAudio]) -> AsyncIterator[PcmAudio]:
    for chunk in chunks:
        yield chunk


def _samples(frame: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(frame, dtype="<i2").reshape(-1, 2)


async def _read_until_end(source: StreamingSource) -> list[bytes]:
    frames = []
    while (frame := source.read()) != b"":
        if frame == SILENCE_FRAME:
            await asyncio.sleep(0)  # let the feeder task run (a yield, not a wait)
            continue
        frames.append(frame)
    return frames


async def test_first_frame_is_ready_as_soon_as_the_first_chunk_arrives() -> None:
    asked_for_second = asyncio.Event()
    release = asyncio.Event()
    chunks = _chunks(tone(1000, 1.0, 24_000), 24_000)

    async def slow() -> AsyncIterator[PcmAudio]:
        yield chunks[0]
        asked_for_second.set()
        await release.wait()
        for chunk in chunks[1:]:
            yield chunk

    source = StreamingSource(settings=PlaybackSettings(normalize=False))
    assert source.read() == SILENCE_FRAME  # nothing yet: silence, the player keeps going
    source.enqueue(slow())
    await asked_for_second.wait()
    first = source.read()
    assert len(first) == FRAME_BYTES
    assert first != SILENCE_FRAME
    release.set()
    source.finish()
    frames = [first, *await _read_until_end(source)]
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert 50 <= len(frames) <= 51  # 1 s of audio, the last frame zero-padded
    audio = np.concatenate([_samples(f) for f in frames]).astype(np.float32) / np.float32(32768)
    assert np.array_equal(audio[:, 0], audio[:, 1])
    assert abs(dominant_frequency(audio[4800:-4800, 0], 48_000) - 1000) < 5
    assert source.read() == b""
    assert not source.is_opus()


async def test_utterances_play_in_order_and_formats_may_change() -> None:
    metrics = Metrics()
    source = StreamingSource(settings=PlaybackSettings(normalize=False), metrics=metrics)
    stereo = to_int16(np.stack([tone(500, 0.5, 16_000), tone(500, 0.5, 16_000)], axis=1))
    six = np.repeat(to_int16(tone(2000, 0.5, 48_000))[:, None], 6, axis=1)
    source.enqueue(_stream(_chunks(tone(300, 0.5, 22_050), 22_050)))
    source.enqueue(
        _stream([PcmAudio(stereo.tobytes(), 16_000, 2), PcmAudio(six.tobytes(), 48_000, 6)])
    )
    source.finish()
    frames = await _read_until_end(source)
    audio = np.concatenate([_samples(f) for f in frames]).astype(np.float32) / np.float32(32768)
    assert abs(dominant_frequency(audio[2400:21600, 0], 48_000) - 300) < 5
    assert abs(dominant_frequency(audio[26400:45600, 0], 48_000) - 500) < 5
    assert abs(dominant_frequency(audio[-21600:-2400, 0], 48_000) - 2000) < 5
    played = metrics.audio_frames_processed_total.labels(format="pcm")._value.get()
    assert played == len(frames) == source.frames_played
    sample = metrics.registry.get_sample_value
    assert sample("audio_bytes_processed_total", {"format": "pcm"}) == 3840 * played


async def test_interrupt_stops_within_one_frame_and_discards_the_queue() -> None:
    metrics = Metrics()
    source = StreamingSource(settings=PlaybackSettings(buffer_frames=10), metrics=metrics)
    chunks = _chunks(tone(440, 3.0, 24_000), 24_000)
    asked_for_third = asyncio.Event()

    async def long() -> AsyncIterator[PcmAudio]:
        for i, chunk in enumerate(chunks):
            if i == 2:
                asked_for_third.set()
            yield chunk

    source.enqueue(long())
    source.enqueue(_stream(_chunks(tone(660, 3.0, 24_000), 24_000)))
    await asked_for_third.wait()  # two chunks framed: about ten frames queued
    assert source.queued_frames >= 8
    assert source.read() not in (b"", SILENCE_FRAME)
    source.interrupt()
    assert source.queued_frames == 0
    assert source.read() == b""  # the very next frame: the player ends the source
    assert source.done
    await source.wait_closed()
    assert source.queued_frames == 0
    dropped = metrics.audio_frames_dropped_total.labels(reason="interrupted")._value.get()
    assert dropped >= 7


async def test_normalisation_bounds_the_peak_and_lifts_quiet_speech() -> None:
    loud = np.clip(tone(200, 1.0, 48_000, amplitude=3.0), -1, 1)  # clipped square-ish wave
    quiet = tone(200, 1.0, 48_000, amplitude=0.005)
    cases: list[tuple[FloatArray, Callable[[float], bool]]] = [
        (loud, lambda peak: peak <= CEILING * 32768 + 1),
        (quiet, lambda peak: 0.005 * 32768 * 3.5 < peak <= 0.005 * 32768 * 4.0 + 2),
    ]
    for audio, check in cases:
        encoder = FrameEncoder()
        frames = []
        for chunk in _chunks(audio, 48_000):
            frames += encoder.push(chunk)
        frames += encoder.flush()
        settled = np.concatenate([_samples(f) for f in frames[10:]])
        assert check(float(np.max(np.abs(settled.astype(np.float32))))), audio.max()


def test_normalizer_never_exceeds_the_ceiling() -> None:
    normalizer = Normalizer()
    rng = np.random.default_rng(3)
    for level in (0.001, 0.01, 0.5, 1.0, 0.001, 1.0):
        frame = (rng.standard_normal((960, 2)) * level).clip(-1, 1).astype(np.float32)
        assert float(np.max(np.abs(normalizer.process(frame)))) <= CEILING + 1e-6


async def test_earcon_plays_while_waiting_and_stops_for_speech() -> None:
    source = StreamingSource(settings=PlaybackSettings(earcon=True))
    waiting = [source.read() for _ in range(60)]
    assert all(len(f) == FRAME_BYTES for f in waiting)
    assert any(f != SILENCE_FRAME for f in waiting)  # the blip
    assert any(f == SILENCE_FRAME for f in waiting)  # and quiet between blips
    peak = max(int(np.max(np.abs(_samples(f)))) for f in waiting)
    assert peak < 32768 * 0.1  # soft
    asked_for_second = asyncio.Event()
    release = asyncio.Event()

    async def reply() -> AsyncIterator[PcmAudio]:
        yield _chunks(tone(300, 0.2, 24_000), 24_000)[0]
        asked_for_second.set()
        await release.wait()

    source.enqueue(reply())
    await asked_for_second.wait()
    spoken = [source.read() for _ in range(60)]
    assert spoken[0] != SILENCE_FRAME
    assert spoken[-1] == SILENCE_FRAME  # starved mid-reply: silence, no earcon
    assert not any(f in waiting for f in spoken if f != SILENCE_FRAME)
    release.set()
    source.interrupt()
    assert source.read() == b""


async def test_empty_source_ends_after_finish() -> None:
    source = StreamingSource()
    source.finish()
    await source.wait_closed()
    assert source.read() == b""


class _FakeVoice:
    def __init__(self) -> None:
        self.played: list[discord.AudioSource] = []
        self.stops = 0

    def play(
        self, source: discord.AudioSource, *, after: Callable[[Exception | None], Any] | None = None
    ) -> None:
        self.played.append(source)
        if after is not None:
            after(None)
            after(RuntimeError("player failed"))

    def stop(self) -> None:
        self.stops += 1


def _playing(playback: VoicePlayback) -> bool:
    return playback.playing


async def test_voice_playback_queues_and_interrupts() -> None:
    voice = _FakeVoice()
    playback = VoicePlayback(voice)
    assert not _playing(playback)
    first = playback.say(_stream(_chunks(tone(440, 0.5, 24_000), 24_000)))
    second = playback.say(_stream(_chunks(tone(440, 0.5, 24_000), 24_000)))
    assert first is second
    assert voice.played == [first]
    assert _playing(playback)
    playback.interrupt()
    assert voice.stops == 1
    assert first.read() == b""
    assert not _playing(playback)
    playback.interrupt()  # nothing playing: no-op
    assert voice.stops == 1
    third = playback.say(_stream([]))
    assert third is not first
    assert voice.played == [first, third]
    playback.finish()
    assert await _read_until_end(third) == []
    third.cleanup()  # discord.py calls it when the player stops


def test_cleanup_after_the_loop_closed_is_harmless() -> None:
    async def make() -> StreamingSource:
        return StreamingSource()

    source = asyncio.run(make())
    source.cleanup()


class _PlayerClient:
    """What discord.py's AudioPlayer thread needs of a VoiceClient; encodes like the real one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, notify_after: int = 0) -> None:
        from discord import opus

        self.client = SimpleNamespace(loop=loop)
        self.ws = SimpleNamespace(speak=self._speak)
        self.encoder = opus.Encoder()
        self.packets: list[bytes] = []
        self.loop = loop
        self.notify_after = notify_after
        self.reached = asyncio.Event()

    async def _speak(self, state: object) -> None:
        return None

    def is_connected(self) -> bool:
        return True

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        self.packets.append(self.encoder.encode(data, 960) if encode else data)
        if len(self.packets) == self.notify_after:
            self.loop.call_soon_threadsafe(self.reached.set)


def _speech_packets(packets: list[bytes]) -> list[bytes]:
    from discord.opus import OPUS_SILENCE

    return [p for p in packets if p != OPUS_SILENCE]


async def test_discord_player_thread_plays_the_stream_in_real_time() -> None:
    from discord import opus
    from discord.player import AudioPlayer

    loop = asyncio.get_running_loop()
    client = _PlayerClient(loop)
    done = asyncio.Event()
    source = StreamingSource(settings=PlaybackSettings(normalize=False))
    source.enqueue(_stream(_chunks(tone(700, 0.3, 24_000), 24_000)))
    source.finish()
    player = AudioPlayer(source, client, after=lambda _: loop.call_soon_threadsafe(done.set))  # type: ignore[arg-type]
    player.start()
    await done.wait()
    packets = _speech_packets(client.packets)
    assert 15 <= len(packets) <= 16
    decoder = opus.Decoder()  # type: ignore[no-untyped-call]
    pcm = b"".join(decoder.decode(p, fec=False) for p in packets)
    audio = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)[:, 0].astype(np.float32)
    assert abs(dominant_frequency(audio[2400:-2400], 48_000) - 700) < 10


async def test_interrupt_stops_the_player_thread_within_a_frame() -> None:
    from discord.player import AudioPlayer

    loop = asyncio.get_running_loop()
    client = _PlayerClient(loop, notify_after=5)
    done = asyncio.Event()
    source = StreamingSource()
    source.enqueue(_stream(_chunks(tone(700, 3.0, 24_000), 24_000)))
    player = AudioPlayer(source, client, after=lambda _: loop.call_soon_threadsafe(done.set))  # type: ignore[arg-type]
    player.start()
    await client.reached.wait()
    sent = len(client.packets)
    source.interrupt()
    await done.wait()
    assert len(_speech_packets(client.packets)) <= sent + 1  # at most the frame in flight
