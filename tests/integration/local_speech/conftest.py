"""Real offline engines, loaded once per session; every test here runs with the network cut."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from openclaw_voice.stt.local import LocalSpeechToText
from openclaw_voice.tts.local import LocalTextToSpeech
from tests.speech import TrackingExecutor, no_network


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with no_network(monkeypatch):
        yield


@pytest.fixture(scope="session")
def stt_executor() -> Iterator[TrackingExecutor]:
    executor = TrackingExecutor()
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def whisper_stt(stt_executor: TrackingExecutor) -> LocalSpeechToText:
    """Whisper tiny.en, loaded by the first test that uses it (inside the network guard)."""
    return LocalSpeechToText("whisper", executor=stt_executor)


@pytest.fixture(scope="session")
def pocketsphinx_stt(stt_executor: TrackingExecutor) -> LocalSpeechToText:
    return LocalSpeechToText("pocketsphinx", executor=stt_executor)


@pytest.fixture(scope="session")
def tts_executor() -> Iterator[TrackingExecutor]:
    executor = TrackingExecutor()
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def neural_tts(tts_executor: TrackingExecutor) -> LocalTextToSpeech:
    return LocalTextToSpeech("neural", executor=tts_executor)


@pytest.fixture(scope="session")
def espeak_tts(tts_executor: TrackingExecutor) -> LocalTextToSpeech:
    return LocalTextToSpeech("espeak", executor=tts_executor)
