"""Prometheus metrics: one registry per `Metrics` object holding every family the project uses.

Every family is registered up front so dashboards and alert rules see it before the first
event. Names follow the project spec exactly (see docs/architecture.md, Observability).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from openclaw_voice import __version__

# Pinned to the classic 0.0.4 text format every Prometheus release recognises, rather than
# prometheus_client's CONTENT_TYPE_LATEST (version=1.0.0 in current releases); the body is the same
# for the legacy-valid names used here.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Voice latencies: a turn should feel live under ~1 s, slow providers reach several
# seconds, and anything past 10 s is a failure whatever the exact figure.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
)

# Known label values are pre-initialised so their series exist (at 0) from the start.
PIPELINE_PHASES: tuple[str, ...] = (
    "audio",
    "stt",
    "agent",
    "tts",
    "receiving",
    "transcribing",
    "processing",
    "synthesizing",
    "playing",
)
# audio_*_processed_total{format}: "opus" = Opus frames received from Discord (after
# decryption); "pcm" = 20 ms PCM frames decoded from them for the speech path or played
# to Discord.
AUDIO_FORMATS: tuple[str, ...] = ("opus", "pcm")
TURN_STATUSES: tuple[str, ...] = ("completed", "error", "interrupted")

REQUIRED_METRIC_NAMES: tuple[str, ...] = (
    "discord_voice_connect_total",
    "discord_command_total",
    "pipeline_request_duration_seconds",
    "pipeline_active_sessions",
    "pipeline_error_total",
    "pipeline_recovery_attempt_total",
    "pipeline_recovery_success_total",
    "pipeline_recovery_failure_total",
    "audio_frames_processed_total",
    "audio_bytes_processed_total",
    "audio_frames_dropped_total",
    "audio_frames_concealed_total",
    "audio_vad_events_total",
    "audio_jitter_buffer_depth_frames",
    "stt_request_duration_seconds",
    "stt_request_total",
    "stt_audio_seconds_total",
    "tts_request_duration_seconds",
    "tts_request_total",
    "tts_characters_total",
    "tts_cache_hits_total",
    "agent_request_duration_seconds",
    "agent_tokens_total",
    "pipeline_end_of_utterance_delay_seconds",
    "pipeline_time_to_first_audio_seconds",
    "pipeline_turn_latency_seconds",
    "stt_confidence_score",
    "stt_error_total",
    "tts_bytes_generated_total",
    "tts_time_to_first_byte_seconds",
    "tts_error_total",
    "agent_time_to_first_token_seconds",
    "agent_request_total",
    "agent_error_total",
    "guild_usage_total",
    "pipeline_turns_total",
    "discord_gateway_connected",
    "discord_gateway_disconnect_total",
    "discord_voice_disconnect_total",
    "openclaw_voice_slot_active",
    "openclaw_voice_build_info",
    "store_errors_total",
    "system_cpu_usage_ratio",
    "system_memory_usage_bytes",
    "system_event_loop_lag_seconds",
    "node_process_memory_bytes",
)

# /proc/self/status keys for node_process_memory_bytes{type}. "heap" is VmData: the
# data segment, where CPython's allocator arenas and malloc'd objects live.
_STATUS_KEYS: Mapping[str, str] = {"rss": "VmRSS", "vms": "VmSize", "heap": "VmData"}
MEMORY_TYPES: tuple[str, ...] = tuple(_STATUS_KEYS)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _read_kib_fields(path: Path) -> dict[str, int]:
    """Parse `Key:   123 kB` lines (the /proc status and meminfo format) into bytes."""
    values: dict[str, int] = {}
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    return values


class ResourceCollector:
    """Scrape-time collector for the system_* families and node_process_memory_bytes.

    CPU usage is this process's CPU time per wall-clock second since the previous
    scrape, divided by the CPUs it may run on, so 1.0 means the process saturates them.
    """

    def __init__(
        self,
        *,
        loop_lag: Callable[[], float] | None = None,
        proc_root: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
        cpus: int | None = None,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
    ) -> None:
        # Public and settable: the ops server fills it in from its AppStatus when the
        # Metrics were built without one.
        self.loop_lag = loop_lag
        self._proc_root = proc_root
        self._cgroup_root = cgroup_root
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._cpus = cpus if cpus is not None else _available_cpus()
        # Scrapes may come from more than one thread (e.g. a test client); the CPU
        # baseline must be read and replaced atomically.
        self._lock = threading.Lock()
        self._last_wall = clock()
        self._last_cpu = cpu_clock()
        self._cpu_ratio = 0.0

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        cpu, memory, lag, limit, process = self._families()
        memory_max = self.memory_limit_bytes()
        if memory_max is not None:
            limit.add_metric([], memory_max)
        cpu.add_metric([], self.cpu_usage_ratio())
        used = self.system_memory_used_bytes()
        if used is not None:
            memory.add_metric([], used)
        if self.loop_lag is not None:
            lag.add_metric([], self.loop_lag())
        for kind, value in self.process_memory_bytes().items():
            process.add_metric([kind], value)
        return [cpu, memory, lag, limit, process]

    def memory_limit_bytes(self) -> int | None:
        """The cgroup v2 ``memory.max`` of this process (systemd's MemoryMax=), if limited."""
        try:
            lines = (self._proc_root / "self" / "cgroup").read_text().splitlines()
            path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
            text = (self._cgroup_root / path.lstrip("/") / "memory.max").read_text().strip()
        except (OSError, StopIteration, IndexError):
            return None
        return int(text) if text.isdigit() else None

    def cpu_usage_ratio(self) -> float:
        with self._lock:
            wall, cpu = self._clock(), self._cpu_clock()
            elapsed = wall - self._last_wall
            # Two scrapes within the clock's resolution: keep the previous figure rather
            # than divide by zero or report a meaningless spike.
            if elapsed > 0:
                ratio = (cpu - self._last_cpu) / (elapsed * self._cpus)
                self._cpu_ratio = min(1.0, max(0.0, ratio))
                self._last_wall, self._last_cpu = wall, cpu
            return self._cpu_ratio

    def system_memory_used_bytes(self) -> int | None:
        """Host memory in use (MemTotal - MemAvailable), or None when unreadable."""
        info = _read_kib_fields(self._proc_root / "meminfo")
        if "MemTotal" not in info or "MemAvailable" not in info:
            return None
        return max(0, info["MemTotal"] - info["MemAvailable"])

    def process_memory_bytes(self) -> dict[str, int]:
        """This process's memory by type (rss, vms, heap); missing entries are omitted."""
        fields = _read_kib_fields(self._proc_root / "self" / "status")
        return {kind: fields[key] for kind, key in _STATUS_KEYS.items() if key in fields}

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "system_cpu_usage_ratio",
                "Process CPU time per wall second since the last scrape, over usable CPUs (0-1).",
            ),
            GaugeMetricFamily(
                "system_memory_usage_bytes", "Host memory in use (MemTotal - MemAvailable)."
            ),
            GaugeMetricFamily(
                "system_event_loop_lag_seconds", "Lateness of the last event-loop monitor tick."
            ),
            GaugeMetricFamily(
                "system_memory_limit_bytes",
                "Memory limit of this process's cgroup (MemoryMax=); absent when unlimited.",
            ),
            GaugeMetricFamily(
                "node_process_memory_bytes",
                "Memory of this (Python) process by type; name kept for dashboard compatibility.",
                labels=["type"],
            ),
        )


class Metrics:
    """Owns a private registry with every project metric and the process collectors.

    Instrumented code uses the attributes, named exactly like their families, e.g.
    `metrics.stt_request_total.labels(provider="openai", status="ok").inc()`.
    """

    def __init__(
        self,
        *,
        loop_lag: Callable[[], float] | None = None,
        proc_root: Path = Path("/proc"),
    ) -> None:
        # A private registry (not prometheus_client's global REGISTRY) so tests and
        # blue/green slots in one interpreter can build as many as they like.
        self.registry = CollectorRegistry()
        registry = self.registry

        self.discord_voice_connect_total = Counter(
            "discord_voice_connect_total",
            "Voice channel connection attempts.",
            ["status"],
            registry=registry,
        )
        self.discord_command_total = Counter(
            "discord_command_total",
            "Slash commands handled.",
            ["command", "status"],
            registry=registry,
        )

        self.pipeline_request_duration_seconds = Histogram(
            "pipeline_request_duration_seconds",
            "Duration of each pipeline phase.",
            ["phase"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.pipeline_active_sessions = Gauge(
            "pipeline_active_sessions", "Voice sessions currently running.", registry=registry
        )
        self.pipeline_error_total = Counter(
            "pipeline_error_total",
            "Pipeline errors by error code and the phase the turn was in.",
            ["error_code", "phase"],
            registry=registry,
        )
        self.pipeline_recovery_attempt_total = Counter(
            "pipeline_recovery_attempt_total", "Recovery attempts started.", registry=registry
        )
        self.pipeline_recovery_success_total = Counter(
            "pipeline_recovery_success_total",
            "Recovery attempts that succeeded.",
            registry=registry,
        )
        self.pipeline_recovery_failure_total = Counter(
            "pipeline_recovery_failure_total", "Recovery attempts that failed.", registry=registry
        )
        self.pipeline_end_of_utterance_delay_seconds = Histogram(
            "pipeline_end_of_utterance_delay_seconds",
            "Time from the end of speech to the end-of-utterance decision.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.pipeline_time_to_first_audio_seconds = Histogram(
            "pipeline_time_to_first_audio_seconds",
            "Time from the end of an utterance to the first reply audio frame sent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.pipeline_turn_latency_seconds = Histogram(
            "pipeline_turn_latency_seconds",
            "End-to-end turn latency, from the end of speech to the end of the reply.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

        self.audio_frames_processed_total = Counter(
            "audio_frames_processed_total",
            "Audio frames processed by format: opus received from Discord, pcm decoded or played.",
            ["format"],
            registry=registry,
        )
        self.audio_bytes_processed_total = Counter(
            "audio_bytes_processed_total",
            "Audio bytes processed, by format (opus payloads; pcm as 16-bit samples).",
            ["format"],
            registry=registry,
        )
        self.audio_frames_dropped_total = Counter(
            "audio_frames_dropped_total", "Audio frames dropped.", ["reason"], registry=registry
        )

        self._register_audio_quality(registry)
        self.stt_request_duration_seconds = Histogram(
            "stt_request_duration_seconds",
            "Speech-to-text request duration.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stt_request_total = Counter(
            "stt_request_total",
            "Speech-to-text requests.",
            ["provider", "status"],
            registry=registry,
        )
        self.stt_audio_seconds_total = Counter(
            "stt_audio_seconds_total",
            "Seconds of audio sent to speech-to-text.",
            ["provider"],
            registry=registry,
        )

        self.tts_request_duration_seconds = Histogram(
            "tts_request_duration_seconds",
            "Text-to-speech request duration.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tts_request_total = Counter(
            "tts_request_total",
            "Text-to-speech requests.",
            ["provider", "status"],
            registry=registry,
        )
        self.tts_characters_total = Counter(
            "tts_characters_total",
            "Characters sent to text-to-speech.",
            ["provider"],
            registry=registry,
        )
        self.tts_cache_hits_total = Counter(
            "tts_cache_hits_total", "Text-to-speech cache hits.", registry=registry
        )

        self.agent_request_duration_seconds = Histogram(
            "agent_request_duration_seconds",
            "Agent request duration.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.agent_tokens_total = Counter(
            "agent_tokens_total",
            "Agent tokens used, by kind (e.g. prompt, completion).",
            ["provider", "kind"],
            registry=registry,
        )

        self.stt_confidence_score = Histogram(
            "stt_confidence_score",
            "Confidence the recogniser reported for a transcript (0-1).",
            ["provider"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
            registry=registry,
        )
        self.stt_error_total = Counter(
            "stt_error_total",
            "Speech-to-text failures by provider and error type.",
            ["provider", "error_type"],
            registry=registry,
        )
        self.tts_bytes_generated_total = Counter(
            "tts_bytes_generated_total",
            "PCM bytes produced by text-to-speech.",
            ["provider"],
            registry=registry,
        )
        self.tts_time_to_first_byte_seconds = Histogram(
            "tts_time_to_first_byte_seconds",
            "Time from a speech request to its first audio.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tts_error_total = Counter(
            "tts_error_total",
            "Text-to-speech failures by provider and error type.",
            ["provider", "error_type"],
            registry=registry,
        )
        self.agent_time_to_first_token_seconds = Histogram(
            "agent_time_to_first_token_seconds",
            "Time from a request to the agent's first token.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.agent_request_total = Counter(
            "agent_request_total",
            "Agent requests.",
            ["provider", "status"],
            registry=registry,
        )
        self.agent_error_total = Counter(
            "agent_error_total",
            "Agent failures by provider and error type.",
            ["provider", "error_type"],
            registry=registry,
        )
        self.guild_usage_total = Counter(
            "guild_usage_total",
            "Billable usage per guild: stt_audio_seconds, tts_characters, llm_tokens.",
            ["guild_id", "provider", "kind"],
            registry=registry,
        )
        self.pipeline_turns_total = Counter(
            "pipeline_turns_total",
            "Conversation turns finished, by outcome (completed, error, interrupted).",
            ["status"],
            registry=registry,
        )
        self.discord_gateway_connected = Gauge(
            "discord_gateway_connected",
            "1 while this process holds a connected Discord gateway session.",
            registry=registry,
        )
        self.discord_gateway_disconnect_total = Counter(
            "discord_gateway_disconnect_total",
            "Connected Discord gateway sessions lost (network, missed heartbeats, op 7 or 9); "
            "the client then resumes or identifies again.",
            registry=registry,
        )
        self.discord_voice_disconnect_total = Counter(
            "discord_voice_disconnect_total",
            "Voice sessions ended, by reason (stop, alone, idle, disconnected, shutdown, ...).",
            ["reason"],
            registry=registry,
        )
        self._register_deployment(registry)
        self.store_errors_total = Counter(
            "store_errors_total",
            "State database errors by operation.",
            ["operation"],
            registry=registry,
        )

        for status in TURN_STATUSES:
            self.pipeline_turns_total.labels(status=status)
        for phase in PIPELINE_PHASES:
            self.pipeline_request_duration_seconds.labels(phase=phase)
        for audio_format in AUDIO_FORMATS:
            self.audio_frames_processed_total.labels(format=audio_format)
            self.audio_bytes_processed_total.labels(format=audio_format)

        self.resources = ResourceCollector(loop_lag=loop_lag, proc_root=proc_root)
        registry.register(self.resources)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def _register_deployment(self, registry: CollectorRegistry) -> None:
        """Which slot is active and which release runs (for dashboards and deploy checks)."""
        self.openclaw_voice_slot_active = Gauge(
            "openclaw_voice_slot_active",
            "1 while this process is the active slot (holds the active lock), else 0.",
            registry=registry,
        )
        self.openclaw_voice_build_info = Gauge(
            "openclaw_voice_build_info",
            "Always 1; the version label says which release this process runs.",
            ["version"],
            registry=registry,
        )
        self.openclaw_voice_build_info.labels(version=__version__).set(1)

    def _register_audio_quality(self, registry: CollectorRegistry) -> None:
        """How well inbound audio survives the network: concealment, VAD, jitter depth."""
        self.audio_frames_concealed_total = Counter(
            "audio_frames_concealed_total",
            "Lost inbound frames filled in, by method (fec: recovered, plc: concealed).",
            ["method"],
            registry=registry,
        )
        self.audio_vad_events_total = Counter(
            "audio_vad_events_total",
            "Voice activity events: speech start (250 ms of speech) and utterance end.",
            ["event"],
            registry=registry,
        )
        self.audio_jitter_buffer_depth_frames = Histogram(
            "audio_jitter_buffer_depth_frames",
            "Packets waiting in a speaker's jitter buffer, sampled as each packet arrives.",
            buckets=(0, 1, 2, 3, 4, 6, 8, 10, 15, 25, 50),
            registry=registry,
        )
        for method in ("fec", "plc"):
            self.audio_frames_concealed_total.labels(method=method)
        for event in ("start", "end"):
            self.audio_vad_events_total.labels(event=event)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE
