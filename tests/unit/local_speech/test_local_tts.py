"""Local TTS: sentence splitting, WAV parsing, configuration errors and espeak failures."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.local import (
    LocalTextToSpeech,
    default_hibari_model_path,
    parse_wav,
    split_sentences,
)
from tests.speech import synthesize_chunks


async def synthesis_error(tts: LocalTextToSpeech, text: str = "Hello.") -> ProviderError:
    try:
        with pytest.raises(ProviderError) as caught:
            await synthesize_chunks(tts, text)
    finally:
        await tts.aclose()
    assert caught.value.stage is Stage.TTS
    assert caught.value.provider == "local"
    return caught.value


def wav_bytes(frames: bytes, *, rate: int = 22_050, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return buffer.getvalue()


def test_sentences_are_split_at_end_punctuation_and_lines() -> None:
    text = "Hello there. How are you?  I\u2019m fine!\u201d Next line\nLast one\u2026 done"

    assert split_sentences(text) == [
        "Hello there.",
        "How are you?",
        "I\u2019m fine!\u201d",
        "Next line",
        "Last one\u2026",
        "done",
    ]
    assert split_sentences(" \n ") == []


def test_wav_with_espeak_placeholder_sizes_is_parsed() -> None:
    """espeak-ng writing to a pipe cannot seek back, so its RIFF/data sizes are 0x7ffff000."""
    frames = bytes(range(256)) * 4
    data = bytearray(wav_bytes(frames + b"\x01"))  # and a stray half sample at the end
    data[4:8] = (0x7FFFF024).to_bytes(4, "little")
    data[40:44] = (0x7FFFF000).to_bytes(4, "little")

    audio = parse_wav(bytes(data))

    assert audio.sample_rate == 22_050
    assert audio.channels == 1
    assert audio.data == frames


def test_wav_with_8_bit_samples_is_a_bad_response() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_wav(wav_bytes(b"\x80" * 100, width=1))

    assert caught.value.kind is ErrorKind.BAD_RESPONSE


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="festival"):
        LocalTextToSpeech("festival")


@pytest.mark.parametrize("engine", ["neural", "espeak"])
async def test_blank_text_is_empty_input(engine: str) -> None:
    error = await synthesis_error(LocalTextToSpeech(engine), " \n ")

    assert error.kind is ErrorKind.EMPTY_INPUT


async def test_a_missing_espeak_binary_is_not_configured() -> None:
    tts = LocalTextToSpeech("espeak", espeak_binary="/nonexistent/espeak-ng")
    with pytest.raises(ProviderError) as caught:
        await tts.load()

    error = await synthesis_error(tts)

    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert error.kind is ErrorKind.NOT_CONFIGURED
    assert "espeak-ng" in error.detail


@pytest.mark.skipif(shutil.which("false") is None, reason="needs the false utility")
async def test_espeak_failing_is_unavailable() -> None:
    error = await synthesis_error(LocalTextToSpeech("espeak", espeak_binary="false"))

    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.retryable


@pytest.mark.skipif(shutil.which("true") is None, reason="needs the true utility")
async def test_espeak_writing_no_wav_is_a_bad_response() -> None:
    error = await synthesis_error(LocalTextToSpeech("espeak", espeak_binary="true"))

    assert error.kind is ErrorKind.BAD_RESPONSE


async def test_a_changed_voice_file_is_not_configured(tmp_path: Path) -> None:
    data = bytearray(default_hibari_model_path().read_bytes())
    data[-1] ^= 0x01
    changed = tmp_path / "hibari.onnx"
    changed.write_bytes(bytes(data))
    tts = LocalTextToSpeech("neural", model_path=changed)
    with pytest.raises(ProviderError) as caught:
        await tts.load()

    error = await synthesis_error(tts)

    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert str(changed) in caught.value.detail
    assert error is caught.value  # remembered; no fallback to espeak for a changed model
    assert tts.active_engine == "neural"


async def test_closed_provider_is_unavailable() -> None:
    tts = LocalTextToSpeech("neural")
    await tts.aclose()
    await tts.aclose()

    error = await synthesis_error(tts)

    assert error.kind is ErrorKind.UNAVAILABLE
    assert "closed" in error.detail


async def test_stream_is_an_async_iterator_of_its_request() -> None:
    tts = LocalTextToSpeech("espeak")
    try:
        chunks = [chunk async for chunk in tts.synthesize(SpeechRequest("One. Two."))]
    finally:
        await tts.aclose()

    assert len(chunks) == 2


async def test_a_shut_down_executor_is_unavailable() -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown()

    error = await synthesis_error(LocalTextToSpeech("neural", executor=executor))

    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.retryable


async def test_a_cancelled_espeak_process_is_killed(tmp_path: Path) -> None:
    """A barge-in (here a timeout) cancels the stream; the synthesizer process must not linger."""
    pid_file = tmp_path / "pid"
    hanging = tmp_path / "espeak-ng"
    hanging.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\nexec sleep 600\n')
    hanging.chmod(0o755)
    tts = LocalTextToSpeech("espeak", espeak_binary=str(hanging))
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(synthesize_chunks(tts, "Hello."), timeout=2.0)
    finally:
        await tts.aclose()

    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


async def test_a_missing_voice_file_is_not_configured(tmp_path: Path) -> None:
    missing = tmp_path / "hibari.onnx"

    error = await synthesis_error(LocalTextToSpeech("neural", model_path=missing))

    assert error.kind is ErrorKind.NOT_CONFIGURED
    assert str(missing) in error.detail
    assert "missing" in error.detail
