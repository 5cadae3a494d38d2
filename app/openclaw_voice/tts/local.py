"""Offline text-to-speech: the hibari neural voice, or espeak-ng.

``neural`` is hibari-tts's bundled American English voice "heart" (ONNX on onnxruntime,
24 kHz). Only the voice inside the wheel is used, never one hibari would download, and
its model file is checked against the sha256 below before it is loaded; the noise seed
is fixed, so the same text always gives the same audio. If hibari is not installed the
neural engine falls back to espeak-ng (with one warning).

``espeak`` runs the ``espeak-ng`` binary (Debian package ``espeak-ng``) as a subprocess
that writes WAV to stdout, one process per sentence.

Both stream one PCM chunk per sentence, first sentence first, so the first audio is ready
after the first sentence rather than the whole text. Neural synthesis runs in an executor
(by default a private one-worker thread pool), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import threading
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from importlib import import_module, resources
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import structlog

from openclaw_voice.audio.pcm import BYTES_PER_SAMPLE, PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.stt.local import sha256_of
from openclaw_voice.tts.base import SpeechRequest

log = structlog.get_logger(__name__)

PROVIDER: Final = "local"
ENGINES: Final = ("neural", "espeak")

# hibari-tts 0.2.1, hibari/assets/: the "heart" voice and the out-of-vocabulary G2P net.
HIBARI_VOICE: Final = "heart"
HIBARI_MODEL_FILE: Final = "hibari.onnx"
HIBARI_MODEL_SHA256: Final = "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8"
HIBARI_ASSET_SHA256: Final[Mapping[str, str]] = {
    "oov.onnx": "d3cfd8122c5f172a98c8de38268bf1213ee09f2c2ae4df6e055fc6532590fe76",
}
NEURAL_SEED: Final = 0
# Loads the G2P tables and the OOV net ("Zorvex" is in no lexicon) before the first request.
_WARM_UP_TEXT: Final = "Ready, Zorvex."

ESPEAK_BINARY: Final = "espeak-ng"
ESPEAK_VOICE: Final = "en-us"
ESPEAK_WORDS_PER_MINUTE: Final = 175
_ESPEAK_VOICE_NAME = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*(?:\+[a-z0-9]+)?")
_SENTENCE_END = re.compile('(?:(?<=[.!?\u2026])|(?<=[.!?\u2026]["\u201d\u2019)\\]]))\\s+(?=\\S)')

T = TypeVar("T")


def _error(kind: ErrorKind, detail: str) -> ProviderError:
    return ProviderError(Stage.TTS, kind, PROVIDER, detail)


def split_sentences(text: str) -> list[str]:
    """Lines, then sentences (end punctuation followed by space); no empty ones."""
    sentences: list[str] = []
    for line in text.splitlines():
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line))
    return [sentence for sentence in sentences if sentence]


def float_to_pcm(samples: Any) -> bytes:
    """float32 in [-1, 1] → s16le bytes."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return bytes((clipped * 32767.0).astype("<i2").tobytes())


def parse_wav(data: bytes) -> PcmAudio:
    """PCM of a 16-bit WAV; tolerates the placeholder sizes espeak-ng writes to a pipe."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        if reader.getsampwidth() != BYTES_PER_SAMPLE:
            raise _error(
                ErrorKind.BAD_RESPONSE, f"espeak-ng wrote {reader.getsampwidth()}-byte samples"
            )
        channels, rate = reader.getnchannels(), reader.getframerate()
        blocks: list[bytes] = []
        while block := reader.readframes(8192):
            blocks.append(block)
    pcm = b"".join(blocks)
    whole = len(pcm) - len(pcm) % (BYTES_PER_SAMPLE * channels)
    return PcmAudio(pcm[:whole], rate, channels)


class _NeuralVoice:
    """A loaded hibari voice; one sentence at a time (its G2P is not thread-safe)."""

    def __init__(self, model_path: Path) -> None:
        hibari = import_module("hibari")
        _verify(model_path, HIBARI_MODEL_SHA256)
        assets = _hibari_assets()
        for name, digest in HIBARI_ASSET_SHA256.items():
            _verify(assets / name, digest)
        self._tts = hibari.Hibari(voice=HIBARI_VOICE, model=str(model_path), threads=1)
        self.sample_rate = int(hibari.SAMPLE_RATE)
        self._lock = threading.Lock()
        self.synthesize(_WARM_UP_TEXT, np.random.default_rng(NEURAL_SEED))

    def split(self, text: str) -> list[str]:
        return [str(sentence) for sentence in self._tts.split_sentences(text)]

    def synthesize(self, sentence: str, rng: np.random.Generator) -> bytes:
        with self._lock:
            parts = [
                self._tts.from_ids(self._tts.ids(phonemes), 1.0, rng)
                for phonemes in self._tts.phonemize(sentence)
            ]
        return b"".join(float_to_pcm(part) for part in parts)


def _verify(path: Path, digest: str) -> None:
    if not path.is_file():
        raise _error(
            ErrorKind.NOT_CONFIGURED, f"voice file {path} is missing; reinstall hibari-tts"
        )
    actual = sha256_of(path)
    if actual != digest:
        raise _error(
            ErrorKind.NOT_CONFIGURED,
            f"voice file {path} has sha256 {actual}, expected {digest}; "
            "refusing a changed model (reinstall the pinned hibari-tts)",
        )


def _hibari_assets() -> Path:
    """hibari's assets directory (ImportError if the package is absent)."""
    return Path(str(resources.files("hibari").joinpath("assets")))


def default_hibari_model_path() -> Path:
    """The bundled voice inside the installed hibari package (ImportError if absent)."""
    return _hibari_assets() / HIBARI_MODEL_FILE


class LocalTextToSpeech:
    """The offline voice (``TTS_PROVIDER=local``)."""

    name = PROVIDER

    def __init__(
        self,
        engine: str = "neural",
        *,
        executor: Executor | None = None,
        model_path: Path | None = None,
        espeak_binary: str = ESPEAK_BINARY,
        espeak_voice: str = ESPEAK_VOICE,
        espeak_words_per_minute: int = ESPEAK_WORDS_PER_MINUTE,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown local TTS engine {engine!r}; expected one of {ENGINES}")
        self.engine = engine
        self._owns_executor = executor is None
        self._executor: Executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="local-tts"
        )
        self._model_path = model_path
        self._espeak_binary = espeak_binary
        self._espeak_voice = espeak_voice
        self._espeak_wpm = espeak_words_per_minute
        self._voice: _NeuralVoice | None = None
        self._use_espeak = engine == "espeak"
        self._load_error: ProviderError | None = None
        self._load_lock = threading.Lock()
        self._closed = False

    @property
    def active_engine(self) -> str:
        """``neural`` or ``espeak``: what actually speaks (after any fallback)."""
        return "espeak" if self._use_espeak else "neural"

    async def load(self) -> None:
        """Load and verify the voice now (e.g. at start-up) instead of on the first call."""
        if not self._use_espeak:
            await self._run(self._loaded_voice)
        if self._use_espeak:
            self._espeak_path()

    async def synthesize(self, request: SpeechRequest) -> AsyncGenerator[PcmAudio, None]:
        if not request.text.strip():
            raise _error(ErrorKind.EMPTY_INPUT, "no text to speak")
        voice = self._voice
        if voice is None and not self._use_espeak:
            voice = await self._run(self._loaded_voice)
        if voice is None:
            stream = self._espeak_stream(request.text, self._espeak_voice_for(request.voice))
        else:
            stream = self._neural_stream(voice, request.text)
        produced = False
        async for chunk in stream:
            produced = True
            yield chunk
        if not produced:
            raise _error(ErrorKind.EMPTY_RESULT, "the text produced no audio")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_executor:
            executor = self._executor
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: executor.shutdown(wait=True, cancel_futures=True)
            )
        self._voice = None

    # -- neural ---------------------------------------------------------------------------
    async def _neural_stream(self, voice: _NeuralVoice, text: str) -> AsyncIterator[PcmAudio]:
        sentences = voice.split(text)
        rng = np.random.default_rng(NEURAL_SEED)  # one generator per request: deterministic

        def start(sentence: str) -> asyncio.Future[bytes]:
            return self._submit(lambda: voice.synthesize(sentence, rng))

        pending = start(sentences[0]) if sentences else None
        following = 1
        try:
            while pending is not None:
                pcm = await self._guard(pending)
                # Synthesize the next sentence while this one is being played.
                more = following < len(sentences)
                pending = start(sentences[following]) if more else None
                following += 1
                if pcm:
                    yield PcmAudio(pcm, voice.sample_rate)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    def _loaded_voice(self) -> _NeuralVoice | None:
        """The hibari voice (loading it once, in the executor); None → use espeak-ng."""
        with self._load_lock:
            if self._voice is not None or self._use_espeak:
                return self._voice
            if self._load_error is not None:
                raise self._load_error
            try:
                model_path = self._model_path or default_hibari_model_path()
                self._voice = _NeuralVoice(model_path)
            except ImportError as exc:
                log.warning(
                    "local_tts_neural_unavailable",
                    fallback="espeak",
                    error=repr(exc),
                    hint="install the 'local' extra for the neural voice",
                )
                self._use_espeak = True
                return None
            except ProviderError as exc:
                self._load_error = exc
                log.error("local_tts_not_configured", engine=self.engine, detail=exc.detail)
                raise
            log.info("local_tts_loaded", engine="neural", sample_rate=self._voice.sample_rate)
            return self._voice

    # -- espeak-ng ------------------------------------------------------------------------
    def _espeak_voice_for(self, requested: str | None) -> str:
        if requested and _ESPEAK_VOICE_NAME.fullmatch(requested):
            return requested
        return self._espeak_voice

    def _espeak_path(self) -> str:
        path = shutil.which(self._espeak_binary)
        if path is None:
            raise _error(
                ErrorKind.NOT_CONFIGURED,
                f"{self._espeak_binary} not found; install the Debian package espeak-ng",
            )
        return path

    async def _espeak_stream(self, text: str, voice: str) -> AsyncIterator[PcmAudio]:
        binary = self._espeak_path()
        for sentence in split_sentences(text):
            audio = await self._espeak(binary, voice, sentence)
            if audio.frames:
                yield audio

    async def _espeak(self, binary: str, voice: str, sentence: str) -> PcmAudio:
        args = ("--stdout", "-v", voice, "-s", str(self._espeak_wpm))
        process = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await process.communicate(sentence.encode())
        finally:
            if process.returncode is None:  # cancelled: do not leave it running
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode != 0:
            message = err.decode(errors="replace").strip()[-300:]
            raise _error(
                ErrorKind.UNAVAILABLE, f"espeak-ng exited with {process.returncode}: {message}"
            )
        try:
            return parse_wav(out)
        except (wave.Error, EOFError) as exc:
            raise _error(ErrorKind.BAD_RESPONSE, f"espeak-ng wrote no valid WAV: {exc}") from exc

    # -- executor -------------------------------------------------------------------------
    async def _run(self, call: Callable[[], T]) -> T:
        return await self._guard(self._submit(call))

    def _submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        if self._closed:
            raise _error(ErrorKind.UNAVAILABLE, "provider is closed")
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, call)
        except RuntimeError as exc:  # the executor was shut down under us
            raise _error(ErrorKind.UNAVAILABLE, f"executor unavailable: {exc}") from exc

    async def _guard(self, future: asyncio.Future[T]) -> T:
        try:
            return await future
        except ProviderError:
            raise
        except Exception as exc:  # an engine failure: let the chain try the next provider
            log.warning("local_tts_failed", engine=self.active_engine, error=repr(exc))
            raise _error(ErrorKind.UNAVAILABLE, f"{self.active_engine} failed: {exc!r}") from exc
