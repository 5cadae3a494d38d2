"""Speech synthesized by the local voice, resampled with soxr, recognised by the local STT."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soxr

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.stt import local as stt_local
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.local import LocalSpeechToText
from openclaw_voice.tts.local import LocalTextToSpeech
from tests.speech import (
    TrackingExecutor,
    captured_logs,
    synthesize_chunks,
    to_stt_audio,
    word_error_rate,
)

SENTENCES = (
    "What is the weather in Paris today?",
    "Turn off the lights in the kitchen.",
    "Tell me a short story about a friendly robot.",
    "How far is the moon from the earth?",
)
MAX_WER = 0.25


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["whisper", "pocketsphinx"])
@pytest.mark.parametrize("sentence", SENTENCES)
async def test_neural_voice_round_trip(
    engine: str,
    sentence: str,
    neural_tts: LocalTextToSpeech,
    whisper_stt: LocalSpeechToText,
    pocketsphinx_stt: LocalSpeechToText,
) -> None:
    stt = whisper_stt if engine == "whisper" else pocketsphinx_stt
    audio = to_stt_audio(await synthesize_chunks(neural_tts, sentence))

    transcript = await stt.transcribe(TranscriptionRequest(audio, language="en"))

    assert neural_tts.active_engine == "neural"
    assert word_error_rate(sentence, transcript.text) <= MAX_WER, transcript.text
    assert transcript.provider == "local"
    assert transcript.language == "en"
    assert transcript.extra == {"engine": engine}
    assert transcript.duration_seconds == pytest.approx(audio.duration_seconds)


@pytest.mark.slow
async def test_streamed_paragraph_round_trip(
    neural_tts: LocalTextToSpeech, whisper_stt: LocalSpeechToText
) -> None:
    """Several sentences come as one chunk each; joined, they transcribe as the paragraph."""
    paragraph = " ".join(SENTENCES)
    chunks = await synthesize_chunks(neural_tts, paragraph)

    transcript = await whisper_stt.transcribe(TranscriptionRequest(to_stt_audio(chunks)))

    assert len(chunks) == len(SENTENCES)
    assert word_error_rate(paragraph, transcript.text) <= MAX_WER, transcript.text
    assert transcript.confidence is not None
    assert 0.0 < transcript.confidence <= 1.0


@pytest.mark.slow
async def test_vocabulary_reaches_whisper(
    neural_tts: LocalTextToSpeech, whisper_stt: LocalSpeechToText
) -> None:
    sentence = "What is the weather in Paris today?"
    audio = to_stt_audio(await synthesize_chunks(neural_tts, sentence))

    transcript = await whisper_stt.transcribe(
        TranscriptionRequest(audio, vocabulary=("OpenClaw", "Paris"))
    )

    assert word_error_rate(sentence, transcript.text) <= MAX_WER, transcript.text


@pytest.mark.slow
async def test_event_loop_keeps_ticking_during_transcription(
    neural_tts: LocalTextToSpeech,
    whisper_stt: LocalSpeechToText,
    stt_executor: TrackingExecutor,
) -> None:
    """A ticker task runs many times while the executor is busy transcribing."""
    audio = to_stt_audio(await synthesize_chunks(neural_tts, " ".join(SENTENCES[:2])))
    await whisper_stt.load()
    submitted = stt_executor.submitted

    transcription = asyncio.create_task(whisper_stt.transcribe(TranscriptionRequest(audio)))
    ticks_while_busy = 0
    while not transcription.done():
        if stt_executor.busy.is_set():
            ticks_while_busy += 1
        await asyncio.sleep(0)
    transcript = transcription.result()

    assert stt_executor.submitted == submitted + 1
    assert ticks_while_busy >= 100, ticks_while_busy
    assert transcript.text


@pytest.mark.slow
async def test_discord_format_audio_is_downmixed_and_resampled(
    neural_tts: LocalTextToSpeech, whisper_stt: LocalSpeechToText
) -> None:
    """48 kHz stereo (Discord's format) works too: the provider converts it with soxr."""
    sentence = SENTENCES[0]
    chunks = await synthesize_chunks(neural_tts, sentence)
    mono = np.frombuffer(b"".join(chunk.data for chunk in chunks), dtype="<i2")
    upsampled = np.asarray(soxr.resample(mono, chunks[0].sample_rate, 48_000), dtype="<i2")
    stereo = np.repeat(upsampled, 2)
    audio = PcmAudio(stereo.tobytes(), 48_000, channels=2)

    transcript = await whisper_stt.transcribe(TranscriptionRequest(audio))

    assert word_error_rate(sentence, transcript.text) <= MAX_WER, transcript.text
    assert transcript.duration_seconds == pytest.approx(audio.duration_seconds)


@pytest.mark.slow
async def test_another_language_hint_still_transcribes_english(
    neural_tts: LocalTextToSpeech, whisper_stt: LocalSpeechToText
) -> None:
    """The local models are English-only: a hint for another language is not an error."""
    sentence = SENTENCES[1]
    audio = to_stt_audio(await synthesize_chunks(neural_tts, sentence))

    transcript = await whisper_stt.transcribe(TranscriptionRequest(audio, language="de-DE"))

    assert transcript.language == "en"
    assert word_error_rate(sentence, transcript.text) <= MAX_WER, transcript.text


def _non_speech(kind: str) -> PcmAudio:
    rng = np.random.default_rng(0)
    index = np.arange(2 * STT_SAMPLE_RATE)
    samples = {
        "noise": rng.normal(0, 1000, index.size),
        "tone": np.sin(2 * np.pi * 440 * index / STT_SAMPLE_RATE) * 8000,
        "clicks": np.where(index % 4000 == 0, 20000, 0),
    }[kind]
    return PcmAudio(np.asarray(samples, dtype="<i2").tobytes(), STT_SAMPLE_RATE)


@pytest.mark.parametrize("engine", ["whisper", "pocketsphinx"])
@pytest.mark.parametrize("kind", ["noise", "tone", "clicks"])
async def test_sound_without_speech_is_an_empty_result(
    engine: str,
    kind: str,
    whisper_stt: LocalSpeechToText,
    pocketsphinx_stt: LocalSpeechToText,
    stt_executor: TrackingExecutor,
) -> None:
    stt = whisper_stt if engine == "whisper" else pocketsphinx_stt
    submitted = stt_executor.submitted

    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(TranscriptionRequest(_non_speech(kind)))

    assert caught.value.kind is ErrorKind.EMPTY_RESULT
    assert caught.value.stage is Stage.STT
    assert stt_executor.submitted == submitted + 1  # it was heard, and nothing recognised


@pytest.mark.slow
async def test_concurrent_first_calls_load_the_model_once(
    neural_tts: LocalTextToSpeech, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentence = SENTENCES[3]
    audio = to_stt_audio(await synthesize_chunks(neural_tts, sentence))
    executor = TrackingExecutor(max_workers=2)
    stt = LocalSpeechToText("pocketsphinx", executor=executor)
    try:
        with captured_logs(monkeypatch, stt_local) as logs:
            transcripts = await asyncio.gather(
                stt.transcribe(TranscriptionRequest(audio)),
                stt.transcribe(TranscriptionRequest(audio)),
            )
    finally:
        await stt.aclose()
        executor.shutdown(wait=True)

    assert [log["event"] for log in logs].count("local_stt_loaded") == 1
    assert transcripts[0].text == transcripts[1].text
    assert word_error_rate(sentence, transcripts[0].text) <= MAX_WER
