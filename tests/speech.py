"""Helpers for speech tests: word error rate, PCM resampling, executor and network guards."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pytest
import soxr
import structlog
from structlog.typing import EventDict

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech

P = ParamSpec("P")
T = TypeVar("T")

_NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
_TENS = {30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty"}
_NUMBERS = {str(value): word for value, word in enumerate(_NUMBER_WORDS)} | {
    str(value): word for value, word in _TENS.items()
}
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise(text: str) -> list[str]:
    """Lower case, no punctuation, small numbers spelled out, split into words."""
    cleaned = _NOT_WORD.sub(" ", text.lower().replace("\u2019", "'").replace("-", " "))
    words = [word.strip("'") for word in cleaned.split()]
    return [_NUMBERS.get(word, word) for word in words if word]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after :func:`normalise`."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1] / len(ref)


def to_stt_audio(chunks: list[PcmAudio]) -> PcmAudio:
    """Concatenate mono TTS chunks and resample them to 16 kHz mono with soxr."""
    assert chunks, "no audio"
    rate = chunks[0].sample_rate
    assert all(chunk.sample_rate == rate and chunk.channels == 1 for chunk in chunks)
    samples = np.frombuffer(b"".join(chunk.data for chunk in chunks), dtype="<i2")
    resampled = soxr.resample(samples, rate, STT_SAMPLE_RATE, quality="HQ")
    return PcmAudio(np.asarray(resampled, dtype="<i2").tobytes(), STT_SAMPLE_RATE)


async def synthesize_chunks(tts: TextToSpeech, text: str) -> list[PcmAudio]:
    return [chunk async for chunk in tts.synthesize(SpeechRequest(text))]


class TrackingExecutor(ThreadPoolExecutor):
    """A real thread pool that records how many jobs it was given and when one is running."""

    def __init__(self, max_workers: int = 1) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="tracked")
        self.submitted = 0
        self.busy = threading.Event()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        self.submitted += 1

        def tracked() -> T:
            self.busy.set()
            try:
                return fn(*args, **kwargs)
            finally:
                self.busy.clear()

        return super().submit(tracked)


class NetworkUsedError(AssertionError):
    """Raised (inside the code under test) when something tries to reach the network."""


@contextmanager
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any outgoing connection or name lookup fails loudly while the block runs."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkUsedError(f"network access attempted: {args!r}")

    with monkeypatch.context() as patch:
        for name in ("connect", "connect_ex", "sendto"):
            patch.setattr(socket.socket, name, refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@contextmanager
def captured_logs(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> Iterator[list[EventDict]]:
    """The structlog events ``module.log`` emits, whatever the global structlog config is."""
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(), processors=[capture], wrapper_class=structlog.BoundLogger
    )
    with monkeypatch.context() as patch:
        patch.setattr(module, "log", logger)
        yield capture.entries
