"""A local Sentry ingest endpoint that records the envelopes a real sentry-sdk sends.

The server runs on the test's event loop; sentry-sdk's transport (a worker thread in the
test process, or a subprocess) posts to it over real HTTP on 127.0.0.1.

Usage::

    async with SentryReceiver() as receiver:
        init_sentry(dsn=receiver.dsn, ...)
        sentry_sdk.capture_message("hi")
        [event] = await receiver.wait_for_events(1)

Never call the blocking ``sentry_sdk.flush()`` on the loop that runs the receiver: the
transport would wait for a server that cannot answer. Await ``wait_for_events`` instead,
or flush via ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class EnvelopeItem:
    """One item of an envelope: its header and payload (JSON-decoded when possible)."""

    headers: dict[str, Any]
    payload: Any


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope as received on ``/api/<project>/envelope/``."""

    project: str
    headers: dict[str, Any]
    items: list[EnvelopeItem] = field(default_factory=list)
    auth: str | None = None


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[EnvelopeItem]]:
    """Split an envelope into its header and items (header line + payload, repeated)."""
    header_line, _, rest = body.partition(b"\n")
    headers: dict[str, Any] = json.loads(header_line) if header_line.strip() else {}
    items: list[EnvelopeItem] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        if not item_line.strip():
            continue
        item_headers: dict[str, Any] = json.loads(item_line)
        length = item_headers.get("length")
        if isinstance(length, int):
            raw, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            raw, _, rest = rest.partition(b"\n")
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw
        items.append(EnvelopeItem(item_headers, payload))
    return headers, items


_ENVELOPE_PATH = re.compile(r"/api/(?P<project>[^/]+)/envelope/")


class SentryReceiver:
    """Fake Sentry: accepts envelope POSTs and keeps the events and transactions sent."""

    def __init__(self, *, project: str = "1", public_key: str = "publickey") -> None:
        self.project = project
        self.public_key = public_key
        self.envelopes: list[Envelope] = []
        self.events: list[dict[str, Any]] = []
        self.transactions: list[dict[str, Any]] = []
        self._changed: asyncio.Condition | None = None
        self._runner: web.ServerRunner | None = None
        self._port: int | None = None

    @property
    def dsn(self) -> str:
        """DSN pointing sentry-sdk at this receiver (available once started)."""
        if self._port is None:
            raise RuntimeError("SentryReceiver is not running; call start() first")
        return f"http://{self.public_key}@127.0.0.1:{self._port}/{self.project}"

    async def start(self) -> None:
        """Listen on an ephemeral port on 127.0.0.1."""
        self._changed = asyncio.Condition()
        # A low-level server, not a web.Application: sentry-sdk's aiohttp integration
        # instruments Application, and tracing the receiver's own requests would send a
        # transaction per envelope received, forever.
        self._runner = web.ServerRunner(web.Server(self._route), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening; recorded envelopes stay available."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # A timeout argument rather than asyncio.timeout at call sites (ASYNC109): every wait
    # is bounded by default, and the error says what was received.
    async def wait_for_events(
        self,
        n: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Wait until at least ``n`` error events arrived; return all received so far."""
        await self._wait(lambda: len(self.events) >= n, timeout, f"{n} event(s)")
        return list(self.events)

    async def wait_for_transactions(
        self,
        n: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Wait until at least ``n`` transactions arrived; return all received so far."""
        await self._wait(lambda: len(self.transactions) >= n, timeout, f"{n} transaction(s)")
        return list(self.transactions)

    async def _wait(
        self,
        done: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109
        what: str,
    ) -> None:
        if self._changed is None:
            raise RuntimeError("SentryReceiver is not running; call start() first")
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            raise TimeoutError(
                f"expected {what} within {timeout}s; got {len(self.events)} event(s), "
                f"{len(self.transactions)} transaction(s)"
            ) from None

    async def _route(self, request: web.BaseRequest) -> web.Response:
        match = _ENVELOPE_PATH.fullmatch(request.path)
        if match is None:
            return web.json_response({"detail": "not found"}, status=404)
        if request.method != "POST":
            return web.json_response({"detail": "method not allowed"}, status=405)
        return await self._handle_envelope(request, match["project"])

    async def _handle_envelope(self, request: web.BaseRequest, project: str) -> web.Response:
        # aiohttp's server already undoes Content-Encoding (gzip, deflate, and br when
        # the optional brotli module is installed), so the body is the plain envelope.
        body = await request.read()
        try:
            headers, items = parse_envelope(body)
        except ValueError as exc:
            return web.json_response({"detail": f"bad envelope: {exc}"}, status=400)

        envelope = Envelope(
            project=project,
            headers=headers,
            items=items,
            auth=request.headers.get("X-Sentry-Auth"),
        )
        assert self._changed is not None
        async with self._changed:
            self.envelopes.append(envelope)
            for item in items:
                if not isinstance(item.payload, dict):
                    continue
                if item.headers.get("type") == "event":
                    self.events.append(item.payload)
                elif item.headers.get("type") == "transaction":
                    self.transactions.append(item.payload)
            self._changed.notify_all()
        return web.json_response({"id": headers.get("event_id")})
