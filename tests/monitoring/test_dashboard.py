"""The Grafana dashboard: valid importable JSON, the panels the issue lists, and every
query over metrics the bot really exports (or recording rules built on them)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.monitoring.promql import (
    ExportedMetrics,
    metric_names,
    source_strings,
    unknown_label_values,
    unknown_labels,
    unknown_metrics,
)
from tests.monitoring.support import DASHBOARD, RECORDING_RULES, REPO, load_yaml

# Each required view, and a metric one of its panels must query.
REQUIRED_PANELS = {
    "turns per minute": "pipeline_turns_total",
    "turn latency p50/p95": "pipeline_time_to_first_audio_seconds_bucket",
    "latency by phase": "pipeline_request_duration_seconds_bucket",
    "errors by code": "pipeline_error_total",
    "active sessions": "pipeline_active_sessions",
    "voice connects": "discord_voice_connect_total",
    "voice disconnects": "discord_voice_disconnect_total",
    "provider usage (stt)": "stt_audio_seconds_total",
    "provider usage (tts)": "tts_characters_total",
    "provider usage (agent)": "agent_tokens_total",
    "slot role": "openclaw_voice_slot_active",
    "version": "openclaw_voice_build_info",
    "process memory": "node_process_memory_bytes",
    "process cpu": "system_cpu_usage_ratio",
}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in document["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def queries(document: dict[str, Any]) -> list[str]:
    exprs = [
        target["expr"]
        for panel in panels(document)
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_dashboard_is_importable_json_with_unique_ids_and_sane_layout() -> None:
    document = dashboard()
    assert document["uid"] == "openclaw-voice"
    assert document["title"]
    assert isinstance(document["schemaVersion"], int)
    ids = [panel["id"] for panel in panels(document)]
    assert len(ids) == len(set(ids))
    for panel in panels(document):
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    # Importable anywhere: the data source is a variable, not a fixed instance's uid.
    [datasource] = [v for v in document["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"


def test_dashboard_has_the_required_panels() -> None:
    used = set().union(*(metric_names(expr) for expr in queries(dashboard())))
    missing = {view: metric for view, metric in REQUIRED_PANELS.items() if metric not in used}
    assert missing == {}


def test_every_dashboard_query_uses_only_exported_metrics() -> None:
    exported = ExportedMetrics.from_registry()
    recorded = [
        rule["record"]
        for group in load_yaml(RECORDING_RULES)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    exprs = queries(dashboard())
    assert len(exprs) > 20
    assert unknown_metrics(exprs, exported, recorded) == {}
    assert unknown_labels(exprs, exported) == {}
    assert unknown_label_values(exprs, exported, source_strings(REPO / "app")) == {}


def test_every_dashboard_variable_used_in_a_query_is_defined() -> None:
    document = dashboard()
    defined = {variable["name"] for variable in document["templating"]["list"]}
    builtin = {"__rate_interval", "__range", "__interval"}
    for expr in queries(document):
        for name in re.findall(r"\$\{?(\w+)", expr):
            assert name in defined | builtin, f"${name} in {expr}"
