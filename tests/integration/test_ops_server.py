"""The ops server over real HTTP on 127.0.0.1: status codes, JSON bodies, Prometheus text."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import aiohttp
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from openclaw_voice.ops.metrics import REQUIRED_METRIC_NAMES, Metrics
from openclaw_voice.ops.server import OpsServer
from openclaw_voice.ops.status import AppStatus, LoopMonitor

GET_ROUTES = ("/live", "/health", "/ready", "/status", "/metrics")
SECRET_DETAIL = "sentinel-failure-detail-7f3a"


class _LaggingMonitor(LoopMonitor):
    """A monitor stuck reporting a fixed lag; real lag detection is unit-tested."""

    def __init__(self, lag: float) -> None:
        super().__init__(interval=3600)
        self._fixed_lag = lag

    @property
    def lag_seconds(self) -> float:
        return self._fixed_lag


class _BrokenStatus(AppStatus):
    def not_ready_reasons(self) -> list[str]:
        raise RuntimeError(SECRET_DETAIL)


class _BrokenMetrics(Metrics):
    def render(self) -> tuple[bytes, str]:
        raise ValueError(SECRET_DETAIL)


@pytest.fixture
def status() -> AppStatus:
    return AppStatus(version="1.2.3", environment="staging")


@pytest.fixture
async def server(status: AppStatus) -> AsyncIterator[OpsServer]:
    async with OpsServer(status, Metrics(), port=0) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Captured structlog events, debug included whatever level the suite configured."""
    previous = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(wrapper_class=previous)


async def _get_json(
    http: aiohttp.ClientSession, url: str, method: str = "GET"
) -> tuple[int, dict[str, Any]]:
    async with http.request(method, url) as response:
        assert response.content_type == "application/json"
        body: dict[str, Any] = await response.json()
        return response.status, body


async def test_live(server: OpsServer, http: aiohttp.ClientSession) -> None:
    assert await _get_json(http, f"{server.url}/live") == (200, {"status": "alive"})


async def test_health_reports_version_uptime_role_and_lag(
    server: OpsServer, http: aiohttp.ClientSession, status: AppStatus
) -> None:
    code, body = await _get_json(http, f"{server.url}/health")

    assert code == 200
    assert body["status"] == "ok"
    assert body["version"] == "1.2.3"
    assert body["slot_role"] == "active"
    assert body["uptime_seconds"] >= 0
    assert 0 <= body["loop_lag_seconds"] <= 1.0
    assert status.loop_monitor.running


async def test_health_is_503_when_the_loop_lags(http: aiohttp.ClientSession) -> None:
    status = AppStatus(version="1", environment="production", loop_monitor=_LaggingMonitor(2.5))

    async with OpsServer(status, None, port=0, max_loop_lag=1.0) as server:
        code, body = await _get_json(http, f"{server.url}/health")

    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["loop_lag_seconds"] == 2.5
    assert body["reasons"] == ["event loop lag 2.500s exceeds 1s"]


async def test_health_ignores_readiness(
    server: OpsServer, http: aiohttp.ClientSession, status: AppStatus
) -> None:
    status.slot_role = "standby"
    status.shutting_down = True

    code, body = await _get_json(http, f"{server.url}/health")

    assert (code, body["status"], body["slot_role"]) == (200, "ok", "standby")


async def test_ready_follows_status_changes(
    server: OpsServer, http: aiohttp.ClientSession, status: AppStatus
) -> None:
    url = f"{server.url}/ready"

    code, body = await _get_json(http, url)
    assert (code, body["ready"], body["reasons"]) == (503, False, ["discord not connected"])

    status.discord_connected = True
    code, body = await _get_json(http, url)
    assert (code, body["ready"], body["reasons"]) == (200, True, [])
    assert body["slot_role"] == "active"
    assert body["discord_connected"] is True

    status.slot_role = "standby"
    code, body = await _get_json(http, url)
    assert (code, body["ready"], body["reasons"]) == (503, False, ["standby"])

    status.slot_role = "active"
    status.shutting_down = True
    code, body = await _get_json(http, url)
    assert (code, body["ready"], body["reasons"]) == (503, False, ["shutting down"])


async def test_status_reports_guilds_as_string_ids(
    server: OpsServer, http: aiohttp.ClientSession, status: AppStatus
) -> None:
    big_snowflake = 2**62 + 1  # beyond JavaScript's safe integers
    status.guild_ids.update({big_snowflake, 5})
    status.active_sessions = 2
    status.discord_connected = True

    code, body = await _get_json(http, f"{server.url}/status")

    assert code == 200
    assert body["guilds"] == {"count": 2, "ids": ["5", str(big_snowflake)]}
    assert body["version"] == "1.2.3"
    assert body["environment"] == "staging"
    assert body["slot_role"] == "active"
    assert body["active_sessions"] == 2
    assert body["discord_connected"] is True
    assert body["shutting_down"] is False
    assert body["ready"] is True
    assert body["uptime_seconds"] >= 0
    assert body["loop_lag_seconds"] >= 0


async def test_metrics_exposes_every_required_family(
    server: OpsServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()

    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        # The parser files counters under their name without "_total".
        if family.type == "counter":
            names.add(f"{family.name}_total")
    assert sorted(set(REQUIRED_METRIC_NAMES) - names) == []
    assert {"process_resident_memory_bytes", "python_info"} <= names


async def _scrape_loop_lag(http: aiohttp.ClientSession, server: OpsServer) -> list[float]:
    async with http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return [sample.value for sample in families["system_event_loop_lag_seconds"].samples]


async def test_metrics_loop_lag_comes_from_the_status_by_default(
    http: aiohttp.ClientSession,
) -> None:
    status = AppStatus(version="1", environment="production", loop_monitor=_LaggingMonitor(0.75))

    async with OpsServer(status, Metrics(), port=0) as server:
        assert await _scrape_loop_lag(http, server) == [0.75]


async def test_metrics_keep_an_explicit_loop_lag_source(
    http: aiohttp.ClientSession, status: AppStatus
) -> None:
    async with OpsServer(status, Metrics(loop_lag=lambda: 0.5), port=0) as server:
        assert await _scrape_loop_lag(http, server) == [0.5]


async def test_metrics_disabled_is_404(http: aiohttp.ClientSession, status: AppStatus) -> None:
    async with OpsServer(status, None, port=0) as server:
        missing = await _get_json(http, f"{server.url}/metrics")
        live = await _get_json(http, f"{server.url}/live")

    assert missing == (404, {"error": "not found", "path": "/metrics"})
    assert live[0] == 200


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_path_is_404_json(
    server: OpsServer, http: aiohttp.ClientSession, method: str
) -> None:
    code, body = await _get_json(http, f"{server.url}/admin/secrets?x=1", method)

    assert (code, body) == (404, {"error": "not found", "path": "/admin/secrets"})


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", GET_ROUTES)
async def test_wrong_method_is_405_json_with_allow(
    server: OpsServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with http.request(method, f"{server.url}{path}") as response:
        body = await response.json()
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"

    assert body == {
        "error": "method not allowed",
        "path": path,
        "method": method,
        "allowed": ["GET", "HEAD"],
    }


@pytest.mark.parametrize("path", GET_ROUTES)
async def test_head_works_for_get_routes(
    server: OpsServer, http: aiohttp.ClientSession, status: AppStatus, path: str
) -> None:
    status.discord_connected = True

    async with http.head(f"{server.url}{path}") as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_responses_are_not_cacheable(server: OpsServer, http: aiohttp.ClientSession) -> None:
    for path in (*GET_ROUTES, "/nowhere"):
        async with http.get(f"{server.url}{path}") as response:
            assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "broken_status", "broken_metrics"),
    [("/ready", True, False), ("/status", True, False), ("/metrics", False, True)],
)
async def test_handler_failure_is_500_json_without_traceback(
    http: aiohttp.ClientSession,
    logs: list[MutableMapping[str, Any]],
    path: str,
    broken_status: bool,
    broken_metrics: bool,
) -> None:
    status_type = _BrokenStatus if broken_status else AppStatus
    metrics_type = _BrokenMetrics if broken_metrics else Metrics
    status = status_type(version="1", environment="production")

    async with (
        OpsServer(status, metrics_type(), port=0) as server,
        http.get(f"{server.url}{path}") as response,
    ):
        text = await response.text()
        code = response.status
        content_type = response.content_type

    assert (code, content_type) == (500, "application/json")
    assert text == '{"error": "internal error"}'
    failures = [entry for entry in logs if entry["event"] == "ops handler failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "error"
    assert failures[0]["path"] == path
    assert failures[0]["exc_info"] is True


async def test_requests_are_access_logged_at_debug(
    http: aiohttp.ClientSession, status: AppStatus, logs: list[MutableMapping[str, Any]]
) -> None:
    server = OpsServer(status, None, port=0)
    await server.start()
    async with http.get(f"{server.url}/live") as response:
        assert response.status == 200
    # Stopping waits for in-flight handlers, so the access log line has been written.
    await server.stop()

    access = [entry for entry in logs if entry["event"] == "ops request"]
    assert len(access) == 1
    assert access[0]["log_level"] == "debug"
    assert access[0]["method"] == "GET"
    assert access[0]["path"] == "/live"
    assert access[0]["status"] == 200
    assert access[0]["duration_ms"] >= 0


async def test_port_zero_resolves_to_the_bound_port(status: AppStatus) -> None:
    server = OpsServer(status, None, port=0)
    assert (server.port, server.running) == (0, False)

    await server.start()
    try:
        assert server.port > 0
        assert server.running
        assert server.url == f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def test_start_twice_is_an_error(server: OpsServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        await server.start()


async def test_stop_is_idempotent_and_stops_the_monitor_it_started(status: AppStatus) -> None:
    server = OpsServer(status, None, port=0)
    await server.stop()

    await server.start()
    monitor_while_serving = status.loop_monitor.running
    await server.stop()
    await server.stop()

    assert monitor_while_serving
    assert not status.loop_monitor.running
    assert not server.running


async def test_a_monitor_started_elsewhere_keeps_running(status: AppStatus) -> None:
    status.loop_monitor.start()
    try:
        async with OpsServer(status, None, port=0):
            pass
        assert status.loop_monitor.running
    finally:
        await status.loop_monitor.stop()


async def test_port_in_use_fails_cleanly(server: OpsServer, status: AppStatus) -> None:
    clash = OpsServer(status, None, port=server.port)

    with pytest.raises(OSError, match="address already in use"):
        await clash.start()

    assert not clash.running


async def test_server_can_restart(http: aiohttp.ClientSession, status: AppStatus) -> None:
    server = OpsServer(status, None, port=0)
    for _ in range(2):
        await server.start()
        assert (await _get_json(http, f"{server.url}/live"))[0] == 200
        await server.stop()


def test_rejects_non_positive_max_loop_lag(status: AppStatus) -> None:
    with pytest.raises(ValueError, match="max_loop_lag"):
        OpsServer(status, None, max_loop_lag=0)


def test_url_brackets_ipv6_hosts(status: AppStatus) -> None:
    server = OpsServer(status, None, host="::1", port=9100)

    assert (server.host, server.url) == ("::1", "http://[::1]:9100")
