"""The metric-name extraction the dashboard and rule checks rely on."""

from __future__ import annotations

import pytest

from tests.monitoring.promql import (
    ExportedMetrics,
    metric_names,
    selector_labels,
    selector_values,
    unknown_label_values,
    unknown_labels,
    unknown_metrics,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="openclaw-voice", instance=~"$instance"} == 0', {"up"}),
        (
            "histogram_quantile(0.95, sum by (phase, le) "
            '(rate(pipeline_request_duration_seconds_bucket{slot=~"$slot"}[$__rate_interval])))',
            {"pipeline_request_duration_seconds_bucket"},
        ),
        (
            "a_total / on (job, instance) group_left (version) b_info offset 5m > 1e3",
            {"a_total", "b_info"},
        ),
        (
            'sum(increase(stt_audio_seconds_total{x="a{b}c"}[$__range])) / 60 * $stt_usd_per_min',
            {"stt_audio_seconds_total"},
        ),
        (
            "instance:pipeline_turn_error_ratio:rate5m > 0.05",
            {"instance:pipeline_turn_error_ratio:rate5m"},
        ),
        ("x or on (job) vector(1) unless absent(y) and bool z", {"x", "y", "z"}),
        ('label_values(up{job="openclaw-voice"}, instance)', {"up"}),
        ("max by (job, instance, slot) (m) * 0 + 1073741824", {"m"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_selector_labels() -> None:
    expr = 'sum(rate(a_total{status="error", code!~"x|y"}[5m])) / b{job="j"}'
    assert selector_labels(expr) == {"a_total": {"status", "code"}, "b": {"job"}}


def test_unknown_metric_and_label_are_reported() -> None:
    exported = ExportedMetrics.from_registry()
    exprs = [
        "rate(pipeline_error_total[5m])",
        "rate(pipeline_eror_total[5m])",
        'rate(pipeline_error_total{cdoe="x"}[5m])',
        "rate(process_cpu_seconds_total[1m]) + haproxy_backend_active_servers",
    ]
    assert unknown_metrics(exprs, exported, recorded=[]) == {
        "rate(pipeline_eror_total[5m])": {"pipeline_eror_total"}
    }
    assert unknown_labels(exprs, exported) == {
        'rate(pipeline_error_total{cdoe="x"}[5m])': {"pipeline_error_total{cdoe}"}
    }


def test_selector_values_names_plain_values_and_regex_alternatives() -> None:
    expr = 'sum(rate(a_total{status="error", code!~"x|y|z.*", job="j"}[5m])) / b{le="0.5"}'
    assert selector_values(expr) == {
        ("a_total", "status", "error"),
        ("a_total", "code", "x"),
        ("a_total", "code", "y"),
        ("a_total", "job", "j"),
        ("b", "le", "0.5"),
    }


def test_label_values_the_bot_never_emits_are_reported() -> None:
    exported = ExportedMetrics.from_registry()
    exprs = [
        'rate(discord_voice_disconnect_total{reason="lost"}[5m])',
        'rate(discord_voice_disconnect_total{reason!="requestd"}[5m])',
        'rate(audio_frames_dropped_total{reason=~"late|overfolw", job="x"}[5m])',
        'haproxy_backend_active_servers{proxy="anything"}',
    ]
    emitted = frozenset({"lost", "requested", "late", "overflow"})
    assert unknown_label_values(exprs, exported, emitted) == {
        exprs[1]: {'discord_voice_disconnect_total{reason="requestd"}'},
        exprs[2]: {'audio_frames_dropped_total{reason="overfolw"}'},
    }
