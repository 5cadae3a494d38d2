"""An operator runs the bot: it connects to (fake) Discord, reports ready, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from openclaw_voice.ops.metrics import REQUIRED_METRIC_NAMES
from tests.cli import finish, start_cli
from tests.fakes.discord.fixtures import running_fake


async def read_log_until(
    stream: asyncio.StreamReader, message: str, seen: list[dict[str, Any]]
) -> dict[str, Any]:
    """Read JSON log lines until one has ``message``; keep every line read in ``seen``."""
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"log ended before {message!r}: {seen}")
        record: dict[str, Any] = json.loads(line)
        seen.append(record)
        if record["message"] == message:
            return record


async def test_run_connects_reports_ready_and_stops_gracefully(tmp_path: Path) -> None:
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # plays systemd's notify socket
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    loop = asyncio.get_running_loop()
    async with running_fake() as fake:
        endpoints = fake.endpoints
        env = {
            "NOTIFY_SOCKET": str(tmp_path / "notify"),
            "WATCHDOG_USEC": "200000",
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_BASE": endpoints.api_base,
            "DISCORD_GATEWAY_URL": endpoints.gateway_url,
            "DISCORD_CA_BUNDLE": str(endpoints.ca_bundle),
            "OPS_PORT": "0",
            "LOG_LEVEL": "info",
            "STATE_DIR": str(tmp_path / "state"),
        }
        process = await start_cli("run", env=env)
        seen: list[dict[str, Any]] = []
        try:
            assert process.stdout is not None
            listening = await asyncio.wait_for(
                read_log_until(process.stdout, "ops server listening", seen), 20
            )
            base = f"http://127.0.0.1:{listening['context']['port']}"
            promoted = read_log_until(process.stdout, "slot promoted to active", seen)
            await asyncio.wait_for(promoted, 30)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/ready") as response:
                    assert response.status == 200, await response.text()
                async with http.get(f"{base}/status") as response:
                    status = await response.json()
                async with http.get(f"{base}/metrics") as response:
                    metrics_text = await response.text()
            assert status["discord_connected"] is True
            assert str(fake.guild.id) in status["guilds"]["ids"]
            families = {family.name for family in text_string_to_metric_families(metrics_text)}
            # The text parser drops the _total suffix of counters.
            names = {name.removesuffix("_total") for name in REQUIRED_METRIC_NAMES}
            assert names <= families
            assert "discord_gateway_connected 1.0" in metrics_text
            notices = {
                (await asyncio.wait_for(loop.sock_recv(systemd, 4096), 10)).decode()
                for _ in range(3)
            }
            assert any(n.startswith("READY=1") for n in notices), notices
            assert "WATCHDOG=1" in notices  # pinged by the running event loop
            process.send_signal(signal.SIGTERM)
            result = await finish(process, within=20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    systemd.close()
    assert result.returncode == 0, result.output
    remaining = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert "stop requested; shutting down" in remaining
    assert remaining[-1] == "stopped"
    assert fake.token not in result.output + json.dumps(seen)
