"""Prometheus configuration, recording and alerting rules: promtool's own checks and unit
tests, and the conventions every alert follows (severity, annotations, runbook)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.monitoring.promql import (
    ExportedMetrics,
    source_strings,
    unknown_label_values,
    unknown_labels,
    unknown_metrics,
)
from tests.monitoring.support import (
    ALERTS,
    PROMETHEUS_CONFIG,
    RECORDING_RULES,
    REPO,
    RULE_TESTS,
    RUNBOOK_URL_PREFIX,
    RUNBOOKS,
    alert_rules,
    load_yaml,
    require_tool,
    run_tool,
)

SEVERITIES = {"critical", "warning"}

# The alerts the issue asks for, each with the severities it must exist at.
REQUIRED_ALERTS = {
    "OpenclawVoiceTurnErrorRate": {"critical", "warning"},
    "OpenclawVoiceTurnLatencyHigh": {"critical", "warning"},
    "OpenclawVoiceTargetDown": {"critical"},
    "OpenclawVoiceStandbyDown": {"warning"},
    "OpenclawVoiceNoHealthyBackend": {"critical"},
    "OpenclawVoiceDiscordGatewayDisconnected": {"critical"},
    "OpenclawVoiceDiscordGatewayFlapping": {"warning"},
    "OpenclawVoiceAudioFramesDropped": {"warning"},
    "OpenclawVoiceDiskSpaceLow": {"critical", "warning"},
    "OpenclawVoiceVoiceConnectionLost": {"critical", "warning"},
    "OpenclawVoiceStateDatabaseErrors": {"critical"},
    "OpenclawVoiceMemoryHigh": {"warning"},
    "OpenclawVoiceCPUHigh": {"warning"},
}


def recording_rules() -> list[dict[str, Any]]:
    document = load_yaml(RECORDING_RULES)
    return [rule for group in document["groups"] for rule in group["rules"] if "record" in rule]


def test_promtool_check_config_passes_on_the_sample_configuration() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    # The sample loads both rule files (check config checks them too).
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_promtool_check_rules_passes() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "rules", str(RECORDING_RULES), str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files, f"no promtool test files in {RULE_TESTS}"
    result = run_tool([promtool, "test", "rules", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_the_sample_configuration_scrapes_both_slots_haproxy_and_the_node_exporter() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    slots = {
        target: group["labels"]["slot"]
        for group in jobs["openclaw-voice"]["static_configs"]
        for target in group["targets"]
    }
    assert sorted(slots.values()) == ["blue", "green"]
    assert {target.rsplit(":", 1)[1] for target in slots} == {"8081", "8082"}
    assert jobs["haproxy"]["static_configs"][0]["targets"]
    assert jobs["node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]  # disk alerts
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert sorted(config["rule_files"]) == ["alerts.yml", "rules.yml"]


def test_every_required_alert_exists_at_its_severities() -> None:
    found: dict[str, set[str]] = {}
    for rule in alert_rules():
        found.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert found == REQUIRED_ALERTS


@pytest.mark.parametrize(
    "rule", alert_rules(), ids=lambda rule: f"{rule['alert']}-{rule['labels']['severity']}"
)
def test_alert_has_severity_annotations_and_an_existing_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    url: str = annotations["runbook_url"]
    assert url.startswith(RUNBOOK_URL_PREFIX + "docs/runbooks/"), url
    page = REPO / url.removeprefix(RUNBOOK_URL_PREFIX)
    assert page.is_file(), f"runbook {page} does not exist"
    text = page.read_text(encoding="utf-8")
    assert rule["alert"] in text
    for section in ("## What it means", "## How to check", "## How to fix", "## How to roll back"):
        assert section in text, f"{page.name} lacks {section!r}"


# Runbook pages that are procedures or failure modes (linked from the README), not an
# alert's page.
PROCEDURES = {
    "README.md",
    "deploy.md",
    "rollback.md",
    "provider-failures.md",
    "shutdown-drain.md",
    "crash-restart.md",
    "clock-jumps.md",
    "deploy-during-faults.md",
}


def test_every_runbook_is_linked_from_an_alert() -> None:
    linked = {rule["annotations"]["runbook_url"].rsplit("/", 1)[1] for rule in alert_rules()}
    pages = {page.name for page in RUNBOOKS.glob("*.md")} - PROCEDURES
    assert pages == linked
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    assert all(f"({page})" in index for page in PROCEDURES - {"README.md"})


def test_each_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for path in RULE_TESTS.glob("*.yml"):
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                if not expected:
                    silent.add(case["alertname"])
                for alert in expected:
                    firing.add((case["alertname"], alert["exp_labels"]["severity"]))
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert wanted - firing == set(), "alerts never expected to fire"
    assert {name for name, _ in wanted} - silent == set(), "alerts never expected to stay silent"


def test_rules_use_only_metrics_the_bot_exports() -> None:
    exported = ExportedMetrics.from_registry()
    recorded = [rule["record"] for rule in recording_rules()]
    exprs = [rule["expr"] for rule in recording_rules()] + [rule["expr"] for rule in alert_rules()]
    assert unknown_metrics(exprs, exported, recorded) == {}
    assert unknown_labels(exprs, exported) == {}
    assert unknown_label_values(exprs, exported, source_strings(REPO / "app")) == {}


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in recording_rules():
        # level:metric[:operations], aggregated per slot (instance), per slot and phase, or
        # per host and filesystem.
        parts = rule["record"].split(":")
        assert len(parts) in (2, 3), rule["record"]
        assert parts[0] in {"instance", "instance_phase", "instance_mountpoint"}, rule["record"]
