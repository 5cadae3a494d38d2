"""The README's first command: ``openclaw-voice demo`` offline, its reply heard back."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.local import LocalSpeechToText
from tests.cli import run_cli
from tests.speech import word_error_rate


def read_as_stt_audio(path: Path) -> PcmAudio:
    with wave.open(str(path), "rb") as handle:
        rate = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    resampled = soxr.resample(samples.astype(np.float32) / 32768, rate, STT_SAMPLE_RATE)
    return PcmAudio((resampled * 32767).astype(np.int16).tobytes(), STT_SAMPLE_RATE)


async def test_demo_answers_a_spoken_question_with_speech(tmp_path: Path) -> None:
    result = run_cli(
        "demo",
        "--say",
        "Repeat after me: the garden door is open.",
        "--out",
        str(tmp_path),
        timeout=180,
    )
    assert result.returncode == 0, result.output
    assert "you: Repeat after me" in result.stdout
    assert "bot: the garden door is open." in result.stdout.lower()
    assert "Traceback" not in result.output
    reply = tmp_path / "reply-1.wav"
    stt = LocalSpeechToText()
    try:
        heard = await stt.transcribe(TranscriptionRequest(read_as_stt_audio(reply)))
    finally:
        await stt.aclose()
    assert word_error_rate("the garden door is open", heard.text) <= 0.25, heard.text


def test_demo_reports_an_unreadable_wav(tmp_path: Path) -> None:
    bogus = tmp_path / "question.wav"
    bogus.write_bytes(b"RIFF....not really a wav")
    result = run_cli("demo", str(bogus), "--out", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"demo: {bogus}: not a readable WAV file")
    assert "Traceback" not in result.output
