"""Alertmanager: amtool validates the configuration and proves the routing; a real
Alertmanager proves the inhibition and delivers to (local stand-ins of) PagerDuty and Slack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.monitoring.alerting import PAGERDUTY_KEY, running_alertmanager
from tests.monitoring.support import (
    ALERTMANAGER_CONFIG,
    alert_rules,
    load_yaml,
    require_tool,
    run_tool,
    wait_for,
)

RECEIVER_BY_SEVERITY = {"critical": "pagerduty-critical", "warning": "slack-warnings"}


def amtool_route(labels: dict[str, str], *, expect: str) -> tuple[int, str]:
    """`amtool config routes test --verify.receivers=<expect>`: exit 0 when it routes there."""
    amtool = require_tool("amtool")
    result = run_tool(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={expect}",
            *(f"{name}={value}" for name, value in labels.items()),
        ]
    )
    return result.returncode, result.stdout + result.stderr


def test_amtool_check_config_passes() -> None:
    amtool = require_tool("amtool")
    result = run_tool([amtool, "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_secrets_come_from_files() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    [pagerduty] = receivers["pagerduty-critical"]["pagerduty_configs"]
    [slack] = receivers["slack-warnings"]["slack_configs"]
    assert "routing_key_file" in pagerduty
    assert "routing_key" not in pagerduty
    assert "service_key" not in pagerduty
    assert "api_url_file" in slack
    assert "api_url" not in slack
    assert "slack_api_url" not in config.get("global", {})


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "OpenclawVoiceTargetDown", "severity": "critical"}, "pagerduty-critical"),
        ({"alertname": "OpenclawVoiceMemoryHigh", "severity": "warning"}, "slack-warnings"),
        # Anything without a known severity still reaches someone: the Slack channel.
        ({"alertname": "SomethingElse", "severity": "info"}, "slack-warnings"),
        ({"alertname": "SomethingElse"}, "slack-warnings"),
    ],
)
def test_amtool_routes(labels: dict[str, str], receiver: str) -> None:
    code, output = amtool_route(labels, expect=receiver)
    assert code == 0, output


@pytest.mark.parametrize(
    ("labels", "wrong"),
    [
        ({"alertname": "OpenclawVoiceTargetDown", "severity": "critical"}, "slack-warnings"),
        ({"alertname": "OpenclawVoiceCPUHigh", "severity": "warning"}, "pagerduty-critical"),
    ],
)
def test_amtool_verification_rejects_a_wrong_receiver(labels: dict[str, str], wrong: str) -> None:
    """The routing checks above can fail: a critical alert does not reach Slack, nor a
    warning PagerDuty."""
    code, output = amtool_route(labels, expect=wrong)
    assert code != 0, output


def test_every_alert_routes_by_its_severity() -> None:
    for rule in alert_rules():
        severity = rule["labels"]["severity"]
        labels = {"alertname": rule["alert"], "severity": severity, "job": "openclaw-voice"}
        code, output = amtool_route(labels, expect=RECEIVER_BY_SEVERITY[severity])
        assert code == 0, f"{rule['alert']} ({severity}): {output}"


def _alert(name: str, severity: str, instance: str) -> dict[str, Any]:
    runbook = f"https://example.invalid/runbooks/{name}.md"
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "job": "openclaw-voice",
            "instance": instance,
        },
        "annotations": {
            "summary": f"{name} {severity} on {instance}",
            "description": "test alert",
            "runbook_url": runbook,
        },
    }


async def test_critical_inhibits_the_matching_warning_and_routes_reach_the_receivers(
    tmp_path: Path,
) -> None:
    async with (
        running_alertmanager(tmp_path) as alertmanager,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
    ):
        await alertmanager.post_alerts(
            http,
            [
                _alert("OpenclawVoiceTurnErrorRate", "critical", "voice-1:8081"),
                _alert("OpenclawVoiceTurnErrorRate", "warning", "voice-1:8081"),
                # Same name, other slot: its critical is not firing, so not inhibited.
                _alert("OpenclawVoiceTurnErrorRate", "warning", "voice-1:8082"),
                _alert("OpenclawVoiceMemoryHigh", "warning", "voice-1:8081"),
            ],
        )

        async def settled() -> list[dict[str, Any]] | None:
            alerts = await alertmanager.alerts(http)
            states = {alert["status"]["state"] for alert in alerts}
            return alerts if len(alerts) == 4 and "unprocessed" not in states else None

        alerts = await wait_for(
            settled, what="4 processed alerts", diagnostics=alertmanager.process.describe
        )
        by_key = {
            (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["instance"]): a
            for a in alerts
        }
        inhibited = by_key["OpenclawVoiceTurnErrorRate", "warning", "voice-1:8081"]
        assert inhibited["status"]["state"] == "suppressed"
        assert inhibited["status"]["inhibitedBy"]
        for key in [
            ("OpenclawVoiceTurnErrorRate", "critical", "voice-1:8081"),
            ("OpenclawVoiceTurnErrorRate", "warning", "voice-1:8082"),
            ("OpenclawVoiceMemoryHigh", "warning", "voice-1:8081"),
        ]:
            assert by_key[key]["status"]["state"] == "active", key
        receivers = {key: [r["name"] for r in alert["receivers"]] for key, alert in by_key.items()}
        assert receivers["OpenclawVoiceTurnErrorRate", "critical", "voice-1:8081"] == [
            "pagerduty-critical"
        ]
        assert receivers["OpenclawVoiceMemoryHigh", "warning", "voice-1:8081"] == ["slack-warnings"]

        # Delivery: one PagerDuty event (with the key from its file), and Slack messages
        # for the two uninhibited warnings (grouped by alertname, job, instance).
        sink = alertmanager.sink
        await sink.wait(sink.pagerduty, 1, timeout=20)
        await sink.wait(sink.slack, 2, timeout=20)
        [event] = sink.pagerduty
        assert event["routing_key"] == PAGERDUTY_KEY
        assert event["event_action"] == "trigger"
        assert "OpenclawVoiceTurnErrorRate critical on voice-1:8081" in event["payload"]["summary"]
        assert {link["text"] for link in event.get("links", [])} == {"Runbook"}
        slack_text = "\n".join(
            str(attachment) for message in sink.slack for attachment in message["attachments"]
        )
        assert "OpenclawVoiceMemoryHigh warning on voice-1:8081" in slack_text
        assert "OpenclawVoiceTurnErrorRate warning on voice-1:8082" in slack_text
        assert "OpenclawVoiceTurnErrorRate warning on voice-1:8081" not in slack_text
