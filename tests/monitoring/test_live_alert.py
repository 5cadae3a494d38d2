"""The observability chain, live: the real bot (`openclaw-voice run` against the fake
Discord) is scraped by a real Prometheus evaluating the repository's health-check alert,
which reaches a real Alertmanager routing it with the repository's configuration.

The forced condition is the simplest honest one: the bot stops, `up` drops to 0 and
OpenclawVoiceTargetDown fires. The only test-specific change to the rule is `for: 1s`
(1 minute in production), with 1 s scrape and evaluation intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.cli import start_cli
from tests.fakes.discord.fixtures import running_fake
from tests.monitoring.alerting import PAGERDUTY_KEY, RunningAlertmanager, running_alertmanager
from tests.monitoring.support import (
    ALERTS,
    BackgroundProcess,
    free_port,
    load_yaml,
    require_tool,
    wait_for,
    write_config,
)

ALERT = "OpenclawVoiceTargetDown"
STARTUP_TIMEOUT = 30


def live_rules() -> dict[str, Any]:
    """alerts.yml's health-check alert as it is, except `for: 1s`."""
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == ALERT:
                return {"groups": [{"name": "live-check", "rules": [{**rule, "for": "1s"}]}]}
    raise AssertionError(f"{ALERT} not in {ALERTS}")


def prometheus_config(bot_port: int, alertmanager: str, rules: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}],
        },
        "scrape_configs": [
            {
                "job_name": "openclaw-voice",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{bot_port}"], "labels": {"slot": "blue"}}
                ],
            }
        ],
    }


class Bot:
    """The real CLI as a subprocess; its JSON log lines are drained into ``lines`` so the
    pipe never fills while Prometheus scrapes it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self._found: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def expect(self, message: str) -> asyncio.Future[dict[str, Any]]:
        return self._found.setdefault(message, asyncio.get_running_loop().create_future())

    async def drain(self) -> None:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        stderr = asyncio.create_task(self.process.stderr.read())
        while line := await self.process.stdout.readline():
            with contextlib.suppress(ValueError):
                record: dict[str, Any] = json.loads(line)
                self.lines.append(record)
                waiter = self._found.get(record.get("message", ""))
                if waiter is not None and not waiter.done():
                    waiter.set_result(record)
        self.stderr = (await stderr).decode(errors="replace")
        for message, waiter in self._found.items():
            if not waiter.done():
                waiter.set_exception(AssertionError(f"bot output ended before {message!r}"))

    def describe(self) -> str:
        tail = "\n".join(json.dumps(line) for line in self.lines[-20:])
        return (
            f"--- bot (returncode {self.process.returncode}), last log lines:\n{tail}\n"
            f"stderr: {self.stderr[-2000:]}"
        )


@contextlib.asynccontextmanager
async def running_bot(state_dir: Path) -> AsyncIterator[tuple[Bot, int]]:
    """The bot connected to a fake Discord, with its ops port; killed by PID on the way out."""
    async with running_fake() as fake:
        endpoints = fake.endpoints
        env = {
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_BASE": endpoints.api_base,
            "DISCORD_GATEWAY_URL": endpoints.gateway_url,
            "DISCORD_CA_BUNDLE": str(endpoints.ca_bundle),
            "OPS_HOST": "127.0.0.1",
            "OPS_PORT": "0",
            "STATE_DIR": str(state_dir),
            "LOG_LEVEL": "info",
        }
        process = await start_cli("run", env=env)
        bot = Bot(process)
        listening, connected = (
            bot.expect("ops server listening"),
            bot.expect("connected to Discord"),
        )
        drain = asyncio.create_task(bot.drain())
        try:
            try:
                record = await asyncio.wait_for(listening, STARTUP_TIMEOUT)
                await asyncio.wait_for(connected, STARTUP_TIMEOUT)
            except (AssertionError, TimeoutError) as exc:
                if process.returncode is None:
                    process.kill()
                await process.wait()
                await drain
                raise AssertionError(f"the bot did not start: {exc!r}\n{bot.describe()}") from None
            yield bot, int(record["context"]["port"])
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await drain


async def query(http: aiohttp.ClientSession, prometheus: str, promql: str) -> list[Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": promql}) as response:
        response.raise_for_status()
        body = await response.json()
    result: list[Any] = body["data"]["result"]
    return result


async def test_stopping_the_bot_fires_the_health_alert_at_alertmanager(tmp_path: Path) -> None:
    prometheus_binary = require_tool("prometheus")
    async with (
        running_alertmanager(tmp_path) as alertmanager,
        running_bot(tmp_path / "state") as (bot, bot_port),
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
    ):
        rules = write_config(tmp_path / "live-rules.yml", live_rules())
        am_address = alertmanager.url.removeprefix("http://")
        config = write_config(
            tmp_path / "prometheus.yml", prometheus_config(bot_port, am_address, rules)
        )
        port = free_port()
        prometheus = BackgroundProcess(
            "prometheus",
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--rules.alert.resend-delay=1s",
            ],
            tmp_path / "prometheus.log",
        )
        url = f"http://127.0.0.1:{port}"

        def diagnostics() -> str:
            return "\n".join(
                [prometheus.describe(), alertmanager.process.describe(), bot.describe()]
            )

        try:
            await prometheus.start()
            await _check_chain(
                http,
                prometheus=url,
                prometheus_process=prometheus,
                alertmanager=alertmanager,
                bot=bot,
                diagnostics=diagnostics,
            )
        finally:
            await prometheus.stop()


async def _check_chain(
    http: aiohttp.ClientSession,
    *,
    prometheus: str,
    prometheus_process: BackgroundProcess,
    alertmanager: RunningAlertmanager,
    bot: Bot,
    diagnostics: Callable[[], str],
) -> None:
    async def ready() -> bool | None:
        if not prometheus_process.running:
            raise AssertionError(f"Prometheus exited\n{diagnostics()}")
        async with http.get(f"{prometheus}/-/ready") as response:
            return True if response.status == 200 else None

    await wait_for(ready, what="Prometheus ready", diagnostics=diagnostics)

    # 1. Prometheus scrapes the live bot: the target is up and the bot's own metrics
    #    (not only Prometheus's synthetic `up`) are stored.
    async def scraped() -> list[Any] | None:
        up = await query(http, prometheus, 'up{job="openclaw-voice"} == 1')
        rss = await query(http, prometheus, 'node_process_memory_bytes{type="rss"} > 0')
        turns = await query(http, prometheus, 'pipeline_turns_total{status="error"}')
        return up if up and rss and turns else None

    [target] = await wait_for(
        scraped, what="the bot scraped", timeout=STARTUP_TIMEOUT, diagnostics=diagnostics
    )
    instance = target["metric"]["instance"]

    async def alertmanager_discovered() -> bool | None:
        async with http.get(f"{prometheus}/api/v1/alertmanagers") as response:
            body = await response.json()
        return True if body["data"]["activeAlertmanagers"] else None

    await wait_for(
        alertmanager_discovered, what="Prometheus to use Alertmanager", diagnostics=diagnostics
    )
    assert await alertmanager.alerts(http) == [], "an alert fired while the bot was up"

    # 2. The forced condition: the bot stops, as when systemd stops the unit. (Its exit
    #    status is tests/e2e/test_run.py's business; here only the scrape failing counts.)
    bot.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(bot.process.wait(), 20)
    except TimeoutError:
        raise AssertionError(f"the bot ignored SIGTERM\n{diagnostics()}") from None

    # 3. The alert fires in Prometheus and arrives at Alertmanager, routed to PagerDuty.
    async def fired() -> dict[str, Any] | None:
        for alert in await alertmanager.alerts(http):
            if alert["labels"].get("alertname") == ALERT and alert["status"]["state"] == "active":
                return alert
        return None

    alert = await wait_for(fired, what=f"{ALERT} at Alertmanager", diagnostics=diagnostics)
    assert alert["labels"] == {
        "alertname": ALERT,
        "severity": "critical",
        "job": "openclaw-voice",
        "instance": instance,
        "slot": "blue",
        "host": instance.rsplit(":", 1)[0],  # the rule's join key with HAProxy's weights
    }
    assert alert["annotations"]["runbook_url"].endswith("docs/runbooks/target-down.md")
    assert instance in alert["annotations"]["summary"]
    assert [receiver["name"] for receiver in alert["receivers"]] == ["pagerduty-critical"]

    # 4. Alertmanager delivered the page with the routing key from its file.
    sink = alertmanager.sink
    await sink.wait(sink.pagerduty, 1, timeout=20)
    [event] = sink.pagerduty
    assert event["routing_key"] == PAGERDUTY_KEY
    assert event["event_action"] == "trigger"
    assert instance in event["payload"]["summary"]
    assert sink.slack == []
