"""The local voices, for real: neural (hibari) and espeak-ng."""

from __future__ import annotations

import sys

import pytest

from openclaw_voice.audio.pcm import BYTES_PER_SAMPLE
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.tts import local as tts_local
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from openclaw_voice.tts.local import LocalTextToSpeech
from tests.speech import TrackingExecutor, captured_logs, synthesize_chunks

THREE_SENTENCES = "Good morning. The kitchen lights are off now. Anything else?"


async def test_is_a_text_to_speech_provider(neural_tts: LocalTextToSpeech) -> None:
    assert isinstance(neural_tts, TextToSpeech)
    assert neural_tts.name == "local"


async def test_neural_voice_is_deterministic_and_streams_sentence_by_sentence(
    neural_tts: LocalTextToSpeech,
) -> None:
    chunks = await synthesize_chunks(neural_tts, THREE_SENTENCES)
    again = await synthesize_chunks(neural_tts, THREE_SENTENCES)
    first_alone = await synthesize_chunks(neural_tts, "Good morning.")

    assert [chunk.data for chunk in chunks] == [chunk.data for chunk in again]
    assert len(chunks) == 3
    # The first chunk is the first sentence and nothing more (seed 0 either way).
    assert chunks[0] == first_alone[0]
    for chunk in chunks:
        assert chunk.sample_rate == 24_000
        assert chunk.channels == 1
        assert chunk.duration_seconds > 0.3


async def test_neural_synthesis_runs_in_the_executor(
    neural_tts: LocalTextToSpeech, tts_executor: TrackingExecutor
) -> None:
    await neural_tts.load()
    submitted = tts_executor.submitted

    chunks = await synthesize_chunks(neural_tts, THREE_SENTENCES)

    # Once loaded, one job per sentence.
    assert tts_executor.submitted == submitted + len(chunks)


async def test_stopping_the_stream_early_is_clean(neural_tts: LocalTextToSpeech) -> None:
    stream = neural_tts.synthesize(SpeechRequest(THREE_SENTENCES))
    first = await anext(stream)
    await stream.aclose()  # barge-in: the next sentence's synthesis is dropped

    assert first.frames > 0


async def test_espeak_produces_16_bit_pcm_at_its_rate(espeak_tts: LocalTextToSpeech) -> None:
    chunks = await synthesize_chunks(espeak_tts, THREE_SENTENCES)

    assert len(chunks) == 3
    for chunk in chunks:
        assert chunk.sample_rate == 22_050
        assert chunk.channels == 1
        assert len(chunk.data) % BYTES_PER_SAMPLE == 0
        assert chunk.duration_seconds > 0.3
        assert max(chunk.data) > 0  # not all zero bytes


async def test_espeak_accepts_a_voice_name_and_ignores_an_unsafe_one(
    espeak_tts: LocalTextToSpeech,
) -> None:
    british = await anext(espeak_tts.synthesize(SpeechRequest("Hello.", voice="en-gb")))
    default = await anext(espeak_tts.synthesize(SpeechRequest("Hello.")))
    unsafe = await anext(espeak_tts.synthesize(SpeechRequest("Hello.", voice="--help")))

    assert british.data != default.data
    assert unsafe.data == default.data


async def test_neural_falls_back_to_espeak_when_hibari_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "hibari", None)  # import hibari → ImportError
    tts = LocalTextToSpeech("neural")
    try:
        with captured_logs(monkeypatch, tts_local) as logs:
            first = await synthesize_chunks(tts, "Hello there.")
            second = await synthesize_chunks(tts, "Hello again.")
    finally:
        await tts.aclose()

    assert tts.active_engine == "espeak"
    assert first[0].sample_rate == second[0].sample_rate == 22_050
    warnings = [log for log in logs if log["event"] == "local_tts_neural_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"


async def test_text_that_makes_no_sound_is_an_empty_result(
    neural_tts: LocalTextToSpeech,
) -> None:
    with pytest.raises(ProviderError) as caught:
        await synthesize_chunks(neural_tts, "-")

    assert caught.value.stage is Stage.TTS
    assert caught.value.kind is ErrorKind.EMPTY_RESULT
