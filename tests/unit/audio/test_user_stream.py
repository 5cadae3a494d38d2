"""A user's receive path end to end: packets in, one utterance per sentence out."""

from __future__ import annotations

import asyncio
import functools
import random

import numpy as np
import pytest

from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.user_stream import StreamSettings, UserAudioStream
from openclaw_voice.audio.vad import VadPool
from openclaw_voice.ops.metrics import Metrics
from tests.unit.audio.signals import opus_frames, speech

SENTENCES = ("Please turn on the kitchen lights.", "What is the weather like in Paris today?")
START = 1_000.0
USER = 42


def _talk(first_sequence: int = 0) -> tuple[list[OpusPacket], list[tuple[float, float]]]:
    """Two sentences with a 1 s pause (no packets sent in the pause, as Discord clients do)."""
    packets, spans = _cached_talk(first_sequence)
    return list(packets), list(spans)


@functools.cache
def _cached_talk(
    first_sequence: int,
) -> tuple[tuple[OpusPacket, ...], tuple[tuple[float, float], ...]]:
    packets: list[OpusPacket] = []
    spans = []
    sequence, clock, timestamp = first_sequence, START, 0
    for text in SENTENCES:
        audio = speech(text)
        loud = np.flatnonzero(np.abs(audio) > 0.02)
        spans.append((clock + loud[0] / 48_000, clock + loud[-1] / 48_000))
        for payload in opus_frames(audio):
            packets.append(OpusPacket(sequence % 65536, timestamp % (1 << 32), payload, clock))
            sequence, clock, timestamp = sequence + 1, clock + 0.02, timestamp + 960
        clock += 1.0
        timestamp += 48_000
    return tuple(packets), tuple(spans)


def _drive(stream: UserAudioStream, packets: list[OpusPacket], seconds_after: float = 1.5) -> None:
    """Delivers packets in arrival order and ticks the 20 ms clock, with synthetic times."""
    ordered = sorted(packets, key=lambda p: p.arrival)
    end = ordered[-1].arrival + seconds_after
    index = 0
    for n in range(round((end - START) / 0.02) + 1):
        now = START + n * 0.02
        while index < len(ordered) and ordered[index].arrival <= now:
            stream.push(ordered[index])
            index += 1
        stream.tick(now)


def _check(utterances: list[Utterance], spans: list[tuple[float, float]]) -> None:
    assert len(utterances) == 2
    for utterance, (begin, end) in zip(utterances, spans, strict=True):
        assert utterance.user_id == USER
        assert utterance.audio.sample_rate == 16_000
        assert utterance.audio.channels == 1
        assert abs(utterance.first_voiced_at - begin) < 0.25, (utterance.first_voiced_at, begin)
        assert abs(utterance.last_voiced_at - end) < 0.3, (utterance.last_voiced_at, end)
        speech_seconds = end - begin
        assert speech_seconds < utterance.audio.duration_seconds < speech_seconds + 0.8
    assert utterances[0].last_voiced_at + 0.7 < utterances[1].first_voiced_at


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "lite"])
def test_two_sentences_give_two_utterances(batched: bool) -> None:
    packets, spans = _talk()
    utterances: list[Utterance] = []
    starts: list[tuple[int, float]] = []
    metrics = Metrics()
    stream = UserAudioStream(
        USER,
        on_utterance=utterances.append,
        on_speech_start=lambda user, at: starts.append((user, at)),
        metrics=metrics,
        vad_pool=VadPool(keep=1, batched=batched),
    )
    _drive(stream, packets)
    _check(utterances, spans)
    assert [user for user, _ in starts] == [USER, USER]
    assert [at for _, at in starts] == [u.first_voiced_at for u in utterances]
    sample = metrics.registry.get_sample_value
    frames = metrics.audio_frames_processed_total.labels(format="pcm")._value.get()
    assert frames == len(packets)
    # 20 ms of 16 kHz mono per packet as 16-bit samples (less the resampler's delay)
    pcm_bytes = sample("audio_bytes_processed_total", {"format": "pcm"})
    assert pcm_bytes is not None
    assert 640 * (len(packets) - 2) <= pcm_bytes <= 640 * len(packets)
    assert sample("audio_frames_processed_total", {"format": "opus"}) == 0  # the receiver's
    assert sample("audio_vad_events_total", {"event": "start"}) == 2
    assert sample("audio_vad_events_total", {"event": "end"}) == 2
    assert sample("audio_jitter_buffer_depth_frames_count") == len(packets)
    stream.close()


def test_loss_reordering_and_jitter_still_give_the_utterances() -> None:
    packets, spans = _talk(first_sequence=65_000)  # crosses the sequence wrap too
    rng = random.Random(7)
    kept = [p for p in packets if rng.random() >= 0.10]
    jittered = [
        OpusPacket(p.sequence, p.timestamp, p.payload, p.arrival + rng.uniform(0.0, 0.03))
        for p in kept
    ]
    utterances: list[Utterance] = []
    metrics = Metrics()
    stream = UserAudioStream(USER, on_utterance=utterances.append, metrics=metrics)
    _drive(stream, jittered)
    _check(utterances, spans)
    assert stream.drops.counts["late"] <= len(packets) // 20
    concealed = sum(
        metrics.registry.get_sample_value("audio_frames_concealed_total", {"method": m}) or 0
        for m in ("fec", "plc")
    )
    assert concealed >= (len(packets) - len(kept)) // 2  # lost frames were filled in
    stream.close()


async def test_utterances_can_go_to_an_asyncio_queue() -> None:
    packets, _ = _talk()
    queue: asyncio.Queue[Utterance] = asyncio.Queue(maxsize=1)
    stream = UserAudioStream(USER, on_utterance=queue)
    _drive(stream, packets)
    assert queue.qsize() == 1
    assert stream.drops.counts["utterance_queue_full"] == 1
    stream.close()


def test_close_hands_over_speech_in_progress_and_frees_resources() -> None:
    packets, _ = _talk()
    utterances: list[Utterance] = []
    pool = VadPool(keep=2, batched=False)
    stream = UserAudioStream(USER, on_utterance=utterances.append, vad_pool=pool)
    _drive(stream, packets[:100], seconds_after=0.1)
    assert utterances == []
    stream.close()
    assert len(utterances) == 1
    assert utterances[0].audio.duration_seconds > 1.0
    stream.close()  # idempotent
    stream.push(packets[100])  # ignored after close
    stream.tick(START + 100.0)
    assert len(pool._free) == 1


def test_idle_stream_returns_its_vad_model_and_skips_the_model() -> None:
    packets, _ = _talk()
    pool = VadPool(keep=2, batched=False)
    utterances: list[Utterance] = []
    stream = UserAudioStream(
        USER,
        on_utterance=utterances.append,
        vad_pool=pool,
        settings=StreamSettings(idle_release=1.0),
    )
    _drive(stream, packets, seconds_after=2.0)
    assert len(utterances) == 2
    assert len(pool._free) == 1  # released after a second without packets
    scored = stream._vad.windows_scored
    for n in range(100):  # two idle seconds
        stream.tick(START + 100 + n * 0.02)
    assert stream._vad.windows_scored == scored
    assert stream._dormant
    position = stream._vad.position
    stream.tick(START + 103)
    assert stream._vad.position == position  # dormant: not even silence is processed
    # speaking again wakes the stream: same sequence space, 200 s later
    later = [
        OpusPacket(p.sequence + len(packets), p.timestamp, p.payload, p.arrival + 200)
        for p in packets
    ]
    index = 0
    for n in range(round((later[-1].arrival + 1.5 - START - 200) / 0.02) + 1):
        now = START + 200 + n * 0.02
        while index < len(later) and later[index].arrival <= now:
            stream.push(later[index])
            index += 1
        stream.tick(now)
    assert len(utterances) == 4
    assert utterances[2].first_voiced_at > START + 200
    stream.close()


def test_garbage_payloads_are_counted_not_fatal() -> None:
    packets, _ = _talk()
    garbage = [
        OpusPacket(p.sequence, p.timestamp, b"\xff\xff\xff" if i % 5 == 0 else p.payload, p.arrival)
        for i, p in enumerate(packets)
    ]
    utterances: list[Utterance] = []
    metrics = Metrics()
    stream = UserAudioStream(USER, on_utterance=utterances.append, metrics=metrics)
    straggler = OpusPacket(3, 3 * 960, packets[3].payload, packets[-1].arrival)
    _drive(stream, [*garbage, straggler])  # and packet 3 again, seconds late
    assert stream.drops.counts["bad_opus"] >= len(packets) // 5 - 1
    assert len(utterances) == 2
    dropped = metrics.audio_frames_dropped_total
    assert dropped.labels(reason="bad_opus")._value.get() == stream.drops.counts["bad_opus"]
    assert dropped.labels(reason="late")._value.get() == 1
    stream.close()


@pytest.mark.parametrize("count", [3])
def test_streams_are_independent(count: int) -> None:
    packets, _ = _talk()
    got: dict[int, list[Utterance]] = {user: [] for user in range(count)}
    streams = [UserAudioStream(user, on_utterance=got[user].append) for user in range(count)]
    ordered = sorted(packets, key=lambda p: p.arrival)
    index = 0
    for n in range(round((ordered[-1].arrival + 1.5 - START) / 0.02) + 1):
        now = START + n * 0.02
        while index < len(ordered) and ordered[index].arrival <= now:
            for user, stream in enumerate(streams):
                if user != 1 or index % 2 == 0:  # user 1 speaks only every other packet
                    stream.push(ordered[index])
            index += 1
        for stream in streams:
            stream.tick(now)
    assert len(got[0]) == 2
    assert len(got[2]) == 2
    assert all(u.user_id == user for user, us in got.items() for u in us)
    for stream in streams:
        stream.close()


def test_sixty_millisecond_packets_keep_time() -> None:
    from discord import opus

    audio = speech(SENTENCES[0])
    encoder = opus.Encoder(bitrate=64)
    pcm = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % 2880, dtype=np.int16)])
    stereo = np.repeat(pcm[:, None], 2, axis=1)
    payloads = [
        encoder.encode(stereo[i : i + 2880].tobytes(), 2880) for i in range(0, len(pcm), 2880)
    ]
    packets = [OpusPacket(i, i * 2880, p, START + i * 0.06) for i, p in enumerate(payloads)]
    utterances: list[Utterance] = []
    stream = UserAudioStream(USER, on_utterance=utterances.append)
    _drive(stream, packets)
    assert len(utterances) == 1
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    spoken = (loud[-1] - loud[0]) / 48_000
    assert spoken < utterances[0].audio.duration_seconds < spoken + 0.8
    assert utterances[0].last_voiced_at - utterances[0].first_voiced_at == pytest.approx(
        spoken, abs=0.3
    )
    stream.close()
