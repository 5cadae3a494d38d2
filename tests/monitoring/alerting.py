"""A real Alertmanager on 127.0.0.1 running the repository's routing tree, with its
PagerDuty and Slack receivers pointed at a local sink instead of the services."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.monitoring.support import (
    ALERTMANAGER_CONFIG,
    BackgroundProcess,
    free_port,
    load_yaml,
    require_tool,
    wait_for,
    write_config,
)

PAGERDUTY_KEY = "test-routing-key-0f9e"


@dataclass
class NotificationSink:
    """Fake PagerDuty events API (POST /pagerduty) and Slack webhook (POST /slack)."""

    pagerduty: list[dict[str, Any]] = field(default_factory=list)
    slack: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/pagerduty", self._record(self.pagerduty, status=202))
        app.router.add_post("/slack", self._record(self.slack, status=200))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _record(self, into: list[dict[str, Any]], *, status: int) -> Any:
        async def handle(request: web.Request) -> web.Response:
            into.append(await request.json())
            self._arrived.set()
            return web.json_response({"status": "success"}, status=status)

        return handle

    async def wait(self, into: list[dict[str, Any]], count: int, timeout: float) -> None:  # noqa: ASYNC109
        """Wait (in-process, on an event) until ``into`` holds ``count`` notifications."""
        async with asyncio.timeout(timeout):
            while len(into) < count:
                self._arrived.clear()
                await self._arrived.wait()


def sink_alertmanager_config(sink: NotificationSink, secrets: Path) -> dict[str, Any]:
    """The repository's alertmanager.yml with only the receivers' endpoints and secret
    files replaced (and the grouping waits shortened), so the real routing tree,
    inhibition and templates run against the local sink."""
    config: dict[str, Any] = copy.deepcopy(load_yaml(ALERTMANAGER_CONFIG))
    routing_key = secrets / "pagerduty-routing-key"
    routing_key.write_text(PAGERDUTY_KEY + "\n", encoding="utf-8")
    webhook = secrets / "slack-webhook-url"
    webhook.write_text(f"{sink.url}/slack\n", encoding="utf-8")
    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            assert "routing_key_file" in pagerduty, "the routing key must come from a file"
            pagerduty["routing_key_file"] = str(routing_key)
            pagerduty["url"] = f"{sink.url}/pagerduty"
        for slack in receiver.get("slack_configs", []):
            assert "api_url_file" in slack, "the webhook URL must come from a file"
            slack["api_url_file"] = str(webhook)
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        for timing in ("group_wait", "group_interval"):
            if timing in route:
                route[timing] = "1s"
    return config


@dataclass
class RunningAlertmanager:
    url: str
    process: BackgroundProcess
    sink: NotificationSink

    async def alerts(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with http.get(f"{self.url}/api/v2/alerts") as response:
            response.raise_for_status()
            alerts: list[dict[str, Any]] = await response.json()
            return alerts

    async def post_alerts(self, http: aiohttp.ClientSession, alerts: list[dict[str, Any]]) -> None:
        async with http.post(f"{self.url}/api/v2/alerts", json=alerts) as response:
            response.raise_for_status()


@asynccontextmanager
async def running_alertmanager(workdir: Path) -> AsyncIterator[RunningAlertmanager]:
    """Start the sink and Alertmanager (127.0.0.1 only, no cluster port); stop both after."""
    binary = require_tool("prometheus-alertmanager", "alertmanager")
    sink = NotificationSink()
    await sink.start()
    secrets = workdir / "alertmanager-secrets"
    secrets.mkdir(mode=0o700)
    config = write_config(workdir / "alertmanager.yml", sink_alertmanager_config(sink, secrets))
    port = free_port()
    process = BackgroundProcess(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir / "alertmanager.log",
    )
    running = RunningAlertmanager(f"http://127.0.0.1:{port}", process, sink)
    try:
        await process.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def ready() -> bool | None:
                if not process.running:
                    raise AssertionError(process.describe())
                async with http.get(f"{running.url}/-/ready") as response:
                    return True if response.status == 200 else None

            await wait_for(ready, what="Alertmanager ready", diagnostics=process.describe)
        yield running
    finally:
        await process.stop()
        await sink.stop()
