"""One Discord user's receive path after decryption: jitter buffer, decode, VAD, utterances."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import structlog

from openclaw_voice.audio.decode import FloatArray, OpusStreamDecoder, packet_slots
from openclaw_voice.audio.drops import DropCounter
from openclaw_voice.audio.jitter import Gap, JitterBuffer, JitterSettings
from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.audio.vad import (
    WINDOW_SAMPLES,
    SpeechEnd,
    SpeechStart,
    VadEvent,
    VadPool,
    VadSettings,
    VoiceActivityDetector,
    default_pool,
)
from openclaw_voice.ops.metrics import Metrics

log = structlog.get_logger(__name__)

Delivery = Callable[[], None]
Work = Callable[[], Delivery]
UtteranceSink = Callable[[Utterance], None] | asyncio.Queue[Utterance]
SpeechStartCallback = Callable[[int, float], None]

_FRAME_SAMPLES = STT_SAMPLE_RATE // 50
_SILENCE = np.zeros(_FRAME_SAMPLES, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Tuning of one user's receive path."""

    jitter: JitterSettings = field(default_factory=JitterSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    idle_release: float = 2.0  # seconds of silence before the VAD model returns to the pool


def _no_delivery() -> None:
    return None


def _no_work() -> Delivery:
    return _no_delivery


class UserAudioStream:
    """Turns one user's Opus packets into utterances, one 20 ms slot per clock tick."""

    def __init__(
        self,
        user_id: int,
        *,
        on_utterance: UtteranceSink,
        on_speech_start: SpeechStartCallback | None = None,
        settings: StreamSettings | None = None,
        vad_pool: VadPool | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.user_id = user_id
        self.settings = s = settings or StreamSettings()
        self._on_utterance = on_utterance
        self._on_speech_start = on_speech_start
        self._metrics = metrics
        self.drops = DropCounter(metrics=metrics, user_id=user_id)
        self.jitter = JitterBuffer(s.jitter, drops=self.drops)
        self._pool = vad_pool or default_pool()
        self._decoder = OpusStreamDecoder()
        self._vad = VoiceActivityDetector(_NoModel(), s.vad)
        self._has_model = False
        self._idle_slots = 0
        self._covered = 0
        self._dormant = False
        self._idle_release_slots = max(1, round(s.idle_release / 0.020))
        self._pre = int(s.vad.pre_padding * STT_SAMPLE_RATE)
        self._post = int(s.vad.post_padding * STT_SAMPLE_RATE)
        self._chunks: list[FloatArray] = []
        self._chunks_start = 0  # stream sample index of the first buffered sample
        self._total = 0  # stream samples appended so far
        self._utterance_start: int | None = None
        self._first_voiced_at = 0.0
        self._lock = threading.Lock()
        self.closed = False
        self.utterances = 0

    @property
    def batch_step(self) -> Callable[[], None] | None:
        """The shared VAD batch run the clock must call between work and delivery, if any."""
        return self._pool.flush if self._pool.batched else None

    def push(self, packet: OpusPacket) -> None:
        """Buffers one packet (cheap; called on the event loop)."""
        if self.closed:
            return
        if self.jitter.push(packet):
            self.drops.end_burst()
        if self._metrics is not None:
            self._metrics.audio_jitter_buffer_depth_frames.observe(self.jitter.depth)

    def tick(self, now: float) -> None:
        """Runs one 20 ms slot inline: prepare, process, the VAD batch, deliver."""
        delivery = self.prepare(now)()
        self._pool.flush()
        delivery()

    def prepare(self, now: float) -> Work:
        """Loop side of a slot: takes the slot from the jitter buffer; returns the CPU work."""
        if self.closed:
            return _no_work
        if self._covered:  # the last packet was longer than 20 ms: its audio covers this slot
            self._covered -= 1
            return _no_work
        slot = self.jitter.pop(now)
        if slot is None and self._dormant:
            return _no_work  # long idle, nothing pending: no work at all for this user
        delay = self.jitter.settings.target_delay
        if isinstance(slot, OpusPacket):
            self._covered = packet_slots(slot.payload) - 1
            at = slot.arrival
        else:
            at = now - delay
        return lambda: self.process(slot, at)

    def process(self, slot: OpusPacket | Gap | None, at: float) -> Delivery:
        """Worker side of a slot: decode or conceal, resample, VAD; returns the delivery."""
        with self._lock:
            if self.closed:
                return _no_delivery
            bad = 0
            if slot is None:
                self._idle_slots += 1
                samples, silent = _SILENCE, True
                if self._has_model and self._idle_slots >= self._idle_release_slots:
                    self._release_model()
            else:
                self._idle_slots = 0
                self._dormant = False
                silent = False
                if not self._has_model:
                    self._vad.model = self._pool.acquire()
                    self._has_model = True
                if isinstance(slot, OpusPacket):
                    errors = self._decoder.errors
                    samples = self._decoder.decode(slot.payload)
                    bad = self._decoder.errors - errors
                    self._count(samples.size)
                else:
                    recovered = self._decoder.recovered
                    samples = self._decoder.conceal(slot.next_payload)
                    if self._metrics is not None:
                        method = "fec" if self._decoder.recovered > recovered else "plc"
                        self._metrics.audio_frames_concealed_total.labels(method=method).inc()
            events = self._ingest(samples, at, silent=silent)
            if self._pool.batched:
                return self._after_batch(events, bad)
            return self._delivery(self._conclude(events), bad)

    def _after_batch(self, events: list[VadEvent], bad: int) -> Delivery:
        """Loop side, after the pool's batched VAD run: the rest of the events, then delivery."""

        def deliver() -> None:
            with self._lock:
                if self.closed:
                    return
                out = self._conclude(events + self._vad.resolve())
            self._delivery(out, bad)()

        return deliver

    def _count(self, samples: int) -> None:
        """One packet decoded to PCM (counted as 16-bit samples at the decoder's output)."""
        if self._metrics is not None:
            self._metrics.audio_frames_processed_total.labels(format="pcm").inc()
            self._metrics.audio_bytes_processed_total.labels(format="pcm").inc(2 * samples)

    def _release_model(self) -> None:
        """Returns the VAD model and goes dormant, unless speech is in progress."""
        if self._has_model and not self._vad.in_speech and self._vad.pending_start is None:
            self._pool.release(self._vad.model)
            self._vad.model = _NoModel()
            self._has_model = False
            self._dormant = True
            self._chunks.clear()
            self._chunks_start = self._total

    def _ingest(self, samples: FloatArray, at: float, *, silent: bool) -> list[VadEvent]:
        """Buffers samples and feeds the VAD; returns the events already known."""
        if len(samples):
            self._chunks.append(samples)
            self._total += len(samples)
        return self._vad.feed(samples, at, silent=silent)

    def _conclude(self, events: list[VadEvent]) -> list[Utterance | SpeechStart]:
        """Cuts utterances for the events; trims what no utterance can need any more."""
        out: list[Utterance | SpeechStart] = []
        for event in events:
            self._handle(event, out)
        self._trim()
        return out

    def _handle(self, event: VadEvent, out: list[Utterance | SpeechStart]) -> None:
        if isinstance(event, SpeechStart):
            self._utterance_start = max(self._chunks_start, event.sample - self._pre)
            self._first_voiced_at = event.at
            out.append(event)
        elif isinstance(event, SpeechEnd) and self._utterance_start is not None:
            end = min(self._total, event.sample + self._post)
            audio = self._cut(self._utterance_start, end)
            self._utterance_start = None
            out.append(Utterance(self.user_id, audio, self._first_voiced_at, event.at))

    def _cut(self, start: int, end: int) -> PcmAudio:
        """The buffered samples [start, end) as 16 kHz mono s16le."""
        joined = np.concatenate(self._chunks) if self._chunks else _SILENCE[:0]
        self._chunks = [joined]
        part = joined[start - self._chunks_start : end - self._chunks_start]
        pcm = np.clip(part * 32768.0, -32768, 32767).astype("<i2")
        return PcmAudio(pcm.tobytes(), STT_SAMPLE_RATE, 1)

    def _trim(self) -> None:
        """Drops buffered audio older than any utterance in progress or its pre-padding."""
        keep = self._total - self._pre - WINDOW_SAMPLES
        pending = self._vad.pending_start
        if pending is not None:
            keep = min(keep, pending - self._pre)
        if self._utterance_start is not None:
            keep = min(keep, self._utterance_start)
        while self._chunks and self._chunks_start + len(self._chunks[0]) <= keep:
            self._chunks_start += len(self._chunks.pop(0))

    def _delivery(self, events: list[Utterance | SpeechStart], bad: int) -> Delivery:
        if not events and not bad:
            return _no_delivery

        def deliver() -> None:
            if bad:
                self.drops.drop("bad_opus", bad)
            for event in events:
                if self._metrics is not None:
                    kind = "start" if isinstance(event, SpeechStart) else "end"
                    self._metrics.audio_vad_events_total.labels(event=kind).inc()
                if isinstance(event, SpeechStart):
                    if self._on_speech_start is not None:
                        self._on_speech_start(self.user_id, event.at)
                else:
                    self._emit(event)

        return deliver

    def _emit(self, utterance: Utterance) -> None:
        """Hands an utterance to the pipeline (loop side)."""
        self.utterances += 1
        log.debug(
            "utterance",
            userId=self.user_id,
            context={"seconds": round(utterance.audio.duration_seconds, 2)},
        )
        if isinstance(self._on_utterance, asyncio.Queue):
            try:
                self._on_utterance.put_nowait(utterance)
            except asyncio.QueueFull:
                self.drops.drop("utterance_queue_full")
        else:
            self._on_utterance(utterance)

    def close(self) -> None:
        """Tears down: hands over speech in progress, frees the decoder and the VAD model."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            out: list[Utterance | SpeechStart] = []
            for event in self._vad.flush():
                self._handle(event, out)
            self.jitter.clear()
            self._chunks.clear()
            if self._has_model:
                self._pool.release(self._vad.model)
                self._has_model = False
            self._decoder.close()
        for item in out:
            if isinstance(item, Utterance):
                self._emit(item)


class _NoModel:
    """Placeholder while a stream holds no Silero instance; only silence reaches it."""

    def process(self, data: memoryview) -> float:
        raise RuntimeError("VAD model used while released")

    def reset(self) -> None:
        return None
