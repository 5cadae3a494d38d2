"""Ops HTTP server: /live, /health, /ready, /metrics and /status for probes and HAProxy.

Every answer is JSON (Prometheus text for /metrics), including 404, 405 and 500; a handler
failure is logged through structlog and never shows a traceback to the client.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.ops.status import AppStatus

_log = structlog.get_logger(__name__)

# Probes are short; waiting longer than this on stop only delays a slot flip.
_SHUTDOWN_TIMEOUT = 5.0


class _StructlogAccessLogger(AbstractAccessLogger):
    """aiohttp access log through structlog at debug: HAProxy probes every 500 ms."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        # A fresh lazy proxy per server, so the structlog configuration in force when the
        # server runs applies, not whatever was cached when this module was imported.
        self._log = structlog.get_logger(__name__)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self._log.debug(
            "ops request",
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round(time * 1000, 3),
            remote=request.remote,
        )


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    body: dict[str, Any] = {"error": exc.reason.lower(), "path": request.path}
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        body["method"] = exc.method
        body["allowed"] = sorted(exc.allowed_methods)
        headers["Allow"] = exc.headers["Allow"]
    return web.json_response(body, status=exc.status, headers=headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # The router raises these for unknown paths (404) and wrong methods (405).
        response = _http_error(request, exc)
    except Exception:
        _log.exception("ops handler failed", method=request.method, path=request.path)
        response = web.json_response({"error": "internal error"}, status=500)
    # Probe answers go stale within a second; no proxy or client may cache them.
    response.headers["Cache-Control"] = "no-store"
    return response


def _metrics_handler(metrics: Metrics) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        body, content_type = metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handle


class OpsServer:
    """The ops endpoints over one `AppStatus` (and `Metrics`, unless disabled)."""

    def __init__(
        self,
        status: AppStatus,
        metrics: Metrics | None,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_loop_lag: float = 1.0,
        admin: Handler | None = None,
    ) -> None:
        if max_loop_lag <= 0:
            raise ValueError(f"max_loop_lag must be positive, got {max_loop_lag!r}")
        self._status = status
        self._metrics = metrics
        if metrics is not None and metrics.resources.loop_lag is None:
            # The lag gauge is only useful when fed; this status's monitor is the source.
            metrics.resources.loop_lag = lambda: status.loop_lag_seconds
        self._host = host
        self._port = port
        self._max_loop_lag = max_loop_lag
        self._admin = admin
        self._runner: web.AppRunner | None = None
        self._owns_monitor = False

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port once started (resolves port 0), else the configured one."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve; also starts the status's loop monitor if nothing else has."""
        if self._runner is not None:
            raise RuntimeError("OpsServer is already running")
        runner = web.AppRunner(
            self._build_app(),
            access_log_class=_StructlogAccessLogger,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        if not self._status.loop_monitor.running:
            self._status.loop_monitor.start()
            self._owns_monitor = True
        _log.info("ops server listening", host=self._host, port=self._port)

    async def stop(self) -> None:
        """Stop serving (and the loop monitor if `start` started it). Idempotent."""
        runner, self._runner = self._runner, None
        if self._owns_monitor:
            self._owns_monitor = False
            await self._status.loop_monitor.stop()
        if runner is None:
            return
        await runner.cleanup()
        _log.info("ops server stopped", host=self._host, port=self._port)

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get("/live", self._live)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/status", self._status_handler)
        # PROMETHEUS_ENABLED=false: no route at all, so /metrics is an ordinary 404.
        if self._metrics is not None:
            app.router.add_get("/metrics", _metrics_handler(self._metrics))
        if self._admin is not None:
            app.router.add_route("GET", "/admin/role", self._admin)
            app.router.add_route("POST", "/admin/role", self._admin)
        return app

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _health(self, request: web.Request) -> web.Response:
        lag = self._status.loop_lag_seconds
        healthy = lag <= self._max_loop_lag
        body: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "version": self._status.version,
            "uptime_seconds": round(self._status.uptime_seconds(), 3),
            "slot_role": self._status.slot_role,
            "loop_lag_seconds": round(lag, 6),
        }
        if not healthy:
            body["reasons"] = [f"event loop lag {lag:.3f}s exceeds {self._max_loop_lag:g}s"]
        return web.json_response(body, status=200 if healthy else 503)

    async def _ready(self, request: web.Request) -> web.Response:
        reasons = self._status.not_ready_reasons()
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "slot_role": self._status.slot_role,
            "discord_connected": self._status.discord_connected,
        }
        return web.json_response(body, status=503 if reasons else 200)

    async def _status_handler(self, request: web.Request) -> web.Response:
        status = self._status
        # Snowflakes exceed JavaScript's safe integer range, so ids travel as strings.
        guild_ids = [str(guild_id) for guild_id in sorted(status.guild_ids)]
        body = {
            "version": status.version,
            "environment": status.environment,
            "slot_role": status.slot_role,
            "guilds": {"count": len(guild_ids), "ids": guild_ids},
            "active_sessions": status.active_sessions,
            "discord_connected": status.discord_connected,
            "shutting_down": status.shutting_down,
            "ready": not status.not_ready_reasons(),
            "uptime_seconds": round(status.uptime_seconds(), 3),
            "loop_lag_seconds": round(status.loop_lag_seconds, 6),
        }
        return web.json_response(body)
