"""The metrics registry: every required family, process collectors, scrape-time values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from openclaw_voice.ops.metrics import (
    AUDIO_FORMATS,
    LATENCY_BUCKETS,
    MEMORY_TYPES,
    PIPELINE_PHASES,
    REQUIRED_METRIC_NAMES,
    Metrics,
    ResourceCollector,
)


def _families(metrics: Metrics) -> dict[str, Metric]:
    body, _ = metrics.render()
    families = {}
    for family in text_string_to_metric_families(body.decode()):
        families[family.name] = family
        # The parser files counters under their name without "_total".
        if family.type == "counter":
            families[f"{family.name}_total"] = family
    return families


def _sample(family: Metric, name: str, **labels: str) -> float:
    for sample in family.samples:
        if sample.name == name and sample.labels == labels:
            return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in {family.name}")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_required_names_are_unique_and_follow_conventions() -> None:
    assert len(set(REQUIRED_METRIC_NAMES)) == len(REQUIRED_METRIC_NAMES)
    assert "node_process_memory_bytes" in REQUIRED_METRIC_NAMES


def test_every_required_family_is_exposed_from_the_start() -> None:
    families = _families(Metrics())

    missing = [name for name in REQUIRED_METRIC_NAMES if name not in families]
    assert missing == []


def test_counters_keep_their_total_suffix_in_samples() -> None:
    families = _families(Metrics())

    assert families["tts_cache_hits_total"].type == "counter"
    assert _sample(families["tts_cache_hits_total"], "tts_cache_hits_total") == 0.0


def test_known_label_values_are_pre_initialised() -> None:
    families = _families(Metrics())

    phases = families["pipeline_request_duration_seconds"]
    for phase in PIPELINE_PHASES:
        assert _sample(phases, "pipeline_request_duration_seconds_count", phase=phase) == 0.0
    assert AUDIO_FORMATS == ("opus", "pcm")
    for audio_format in AUDIO_FORMATS:
        frames = families["audio_frames_processed_total"]
        assert _sample(frames, "audio_frames_processed_total", format=audio_format) == 0.0
        data = families["audio_bytes_processed_total"]
        assert _sample(data, "audio_bytes_processed_total", format=audio_format) == 0.0


def test_histogram_buckets_suit_voice_latencies() -> None:
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    assert LATENCY_BUCKETS[0] <= 0.025
    assert LATENCY_BUCKETS[-1] == 10.0
    families = _families(Metrics())
    buckets = {
        sample.labels["le"]
        for sample in families["pipeline_turn_latency_seconds"].samples
        if sample.name.endswith("_bucket")
    }
    assert {"0.05", "1.0", "10.0", "+Inf"} <= buckets


def test_instruments_record_into_their_own_registry() -> None:
    first, second = Metrics(), Metrics()

    first.stt_request_total.labels(provider="local", status="ok").inc()
    first.pipeline_active_sessions.set(3)
    first.pipeline_turn_latency_seconds.observe(0.8)

    one, other = _families(first), _families(second)
    assert _sample(one["stt_request_total"], "stt_request_total", provider="local", status="ok")
    assert _sample(one["pipeline_active_sessions"], "pipeline_active_sessions") == 3.0
    latency = one["pipeline_turn_latency_seconds"]
    assert _sample(latency, "pipeline_turn_latency_seconds_bucket", le="1.0") == 1.0
    assert _sample(latency, "pipeline_turn_latency_seconds_bucket", le="0.75") == 0.0
    assert other["stt_request_total"].samples == []
    assert _sample(other["pipeline_active_sessions"], "pipeline_active_sessions") == 0.0


def test_process_platform_and_gc_collectors_are_registered() -> None:
    families = _families(Metrics())

    assert _sample(families["process_resident_memory_bytes"], "process_resident_memory_bytes")
    assert "python_info" in families
    assert "python_gc_objects_collected_total" in families


def test_render_returns_prometheus_text() -> None:
    body, content_type = Metrics().render()

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE node_process_memory_bytes gauge" in body


def test_resource_values_are_sane() -> None:
    metrics = Metrics(loop_lag=lambda: 0.125)
    families = _families(metrics)

    process = families["node_process_memory_bytes"]
    rss = _sample(process, "node_process_memory_bytes", type="rss")
    vms = _sample(process, "node_process_memory_bytes", type="vms")
    heap = _sample(process, "node_process_memory_bytes", type="heap")
    assert rss > 1024 * 1024
    assert vms >= rss
    assert 0 < heap <= vms
    assert {sample.labels["type"] for sample in process.samples} == set(MEMORY_TYPES)
    memory = _sample(families["system_memory_usage_bytes"], "system_memory_usage_bytes")
    assert memory > 0
    cpu = _sample(families["system_cpu_usage_ratio"], "system_cpu_usage_ratio")
    assert 0.0 <= cpu <= 1.0
    lag = _sample(families["system_event_loop_lag_seconds"], "system_event_loop_lag_seconds")
    assert lag == 0.125


def test_loop_lag_without_a_source_has_no_sample() -> None:
    families = _families(Metrics())

    assert families["system_event_loop_lag_seconds"].samples == []


@pytest.mark.parametrize(
    ("cpus", "cpu_seconds", "expected"),
    [(1, 0.5, 0.25), (2, 1.0, 0.25), (1, 0.0, 0.0), (1, 5.0, 1.0)],
    ids=["half-core", "two-cores", "idle", "clamped"],
)
def test_cpu_ratio_is_cpu_time_over_wall_time_and_cpus(
    cpus: int, cpu_seconds: float, expected: float
) -> None:
    wall, cpu = _Clock(), _Clock()
    collector = ResourceCollector(clock=wall, cpu_clock=cpu, cpus=cpus)

    wall.now, cpu.now = 2.0, cpu_seconds

    assert collector.cpu_usage_ratio() == pytest.approx(expected)


def test_cpu_ratio_is_measured_since_the_previous_scrape() -> None:
    wall, cpu = _Clock(), _Clock()
    collector = ResourceCollector(clock=wall, cpu_clock=cpu, cpus=1)
    wall.now, cpu.now = 1.0, 1.0
    assert collector.cpu_usage_ratio() == pytest.approx(1.0)

    wall.now, cpu.now = 3.0, 1.5

    assert collector.cpu_usage_ratio() == pytest.approx(0.25)


def test_cpu_ratio_keeps_the_last_value_when_no_time_has_passed() -> None:
    wall, cpu = _Clock(), _Clock()
    collector = ResourceCollector(clock=wall, cpu_clock=cpu, cpus=1)
    wall.now, cpu.now = 1.0, 0.5
    assert collector.cpu_usage_ratio() == pytest.approx(0.5)

    cpu.now = 0.9

    assert collector.cpu_usage_ratio() == pytest.approx(0.5)


def test_cpu_count_defaults_to_usable_cpus() -> None:
    wall, cpu = _Clock(), _Clock()
    collector = ResourceCollector(clock=wall, cpu_clock=cpu)
    wall.now, cpu.now = 1.0, 1.0

    assert collector.cpu_usage_ratio() == pytest.approx(1 / len(os.sched_getaffinity(0)))


def test_proc_files_are_parsed_and_junk_ignored(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text(
        "Name:\tpython\nVmSize:\t  2048 kB\nVmRSS:\t  1024 kB\nVmData:\t  many kB\nThreads:\t4\n"
    )
    (tmp_path / "meminfo").write_text("MemTotal:  1000 kB\nMemAvailable:  400 kB\nHuge: 2 MB\n")
    collector = ResourceCollector(proc_root=tmp_path)

    assert collector.process_memory_bytes() == {"rss": 1024 * 1024, "vms": 2048 * 1024}
    assert collector.system_memory_used_bytes() == 600 * 1024


def test_incomplete_meminfo_gives_no_system_memory(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:  1000 kB\n")

    assert ResourceCollector(proc_root=tmp_path).system_memory_used_bytes() is None


def test_missing_proc_leaves_families_present_without_samples(tmp_path: Path) -> None:
    families = _families(Metrics(proc_root=tmp_path))

    assert families["node_process_memory_bytes"].samples == []
    assert families["system_memory_usage_bytes"].samples == []
    assert _sample(families["system_cpu_usage_ratio"], "system_cpu_usage_ratio") >= 0.0


def test_describe_names_the_scrape_time_families() -> None:
    names = [family.name for family in ResourceCollector().describe()]

    assert names == [
        "system_cpu_usage_ratio",
        "system_memory_usage_bytes",
        "system_event_loop_lag_seconds",
        "system_memory_limit_bytes",
        "node_process_memory_bytes",
    ]


@pytest.mark.parametrize(("limit", "expected"), [("1073741824\n", 1073741824), ("max\n", None)])
def test_memory_limit_comes_from_the_cgroup(
    tmp_path: Path, limit: str, expected: int | None
) -> None:
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/system.slice/voice.service\n")
    unit = tmp_path / "cgroup" / "system.slice" / "voice.service"
    unit.mkdir(parents=True)
    (unit / "memory.max").write_text(limit)
    collector = ResourceCollector(proc_root=tmp_path / "proc", cgroup_root=tmp_path / "cgroup")
    assert collector.memory_limit_bytes() == expected


def test_memory_limit_absent_without_cgroup_file(tmp_path: Path) -> None:
    assert ResourceCollector(proc_root=tmp_path).memory_limit_bytes() is None
