"""Base of the local HTTP fakes of provider APIs: a server on 127.0.0.1 with fault controls.

Each fake (OpenAI, ElevenLabs, Google, Azure, OpenClaw) subclasses :class:`FakeHttpApi`,
adds its routes in :meth:`routes`, and calls :meth:`FakeHttpApi.before_response` at the top
of every handler so the shared controls apply: holding responses until released, extra
latency, queued failures (status, body, ``Retry-After``), malformed JSON, and cutting a
stream after N chunks. Requests are recorded for assertions (and can be waited for).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class Failure:
    """One queued failure: the next matching request gets this instead of success."""

    status: int
    body: str = '{"error": {"message": "injected failure"}}'
    retry_after: float | None = None
    content_type: str = "application/json"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


@dataclass
class Controls:
    """Knobs a test turns; all default to a healthy, fast server."""

    latency: float = 0.0  # before the response (first byte) starts
    failures: deque[Failure] = field(default_factory=deque)
    malformed_json: int = 0  # how many next responses are not valid JSON
    cut_stream_after: int | None = None  # streaming responses stop after N chunks
    chunk_delay: float = 0.0  # between streamed chunks
    hold: asyncio.Event | None = None  # when set up, responses wait until it is set

    def fail(self, status: int, times: int = 1, **kwargs: Any) -> None:
        for _ in range(times):
            self.failures.append(Failure(status, **kwargs))


class FakeHttpApi:
    """An aiohttp server on 127.0.0.1:0; ``async with`` starts and stops it."""

    def __init__(self) -> None:
        self.controls = Controls()
        self.requests: list[RecordedRequest] = []
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, app: web.Application) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self.controls.hold is not None:
            self.controls.hold.set()  # never leave a held handler behind
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        recorded = RecordedRequest(
            request.method, request.path, dict(request.headers), dict(request.query), body
        )
        self.requests.append(recorded)
        self._arrived.set()
        return recorded

    async def wait_for_requests(self, count: int, within: float = 30.0) -> list[RecordedRequest]:
        """The first ``count`` requests, once they have arrived."""
        async with asyncio.timeout(within):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests[:count]

    async def before_response(self) -> web.Response | None:
        """Apply hold, latency and queued failures; a response returned here is sent as-is."""
        if self.controls.hold is not None:
            await self.controls.hold.wait()
        if self.controls.latency:
            await asyncio.sleep(self.controls.latency)
        if self.controls.failures:
            failure = self.controls.failures.popleft()
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            return web.Response(
                status=failure.status,
                text=failure.body,
                content_type=failure.content_type,
                headers=headers,
            )
        if self.controls.malformed_json:
            self.controls.malformed_json -= 1
            return web.Response(status=200, text="{not json", content_type="application/json")
        return None

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        """An error the way the APIs shape them (tests assert SDKs parse it)."""
        return web.Response(
            status=status,
            text=json.dumps({"error": {"message": message, "type": "invalid_request_error"}}),
            content_type="application/json",
        )

    async def stream_chunks(
        self, request: web.Request, chunks: list[bytes], content_type: str
    ) -> web.StreamResponse:
        """Send ``chunks`` as a chunked response, honouring chunk_delay and cut_stream_after."""
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        await response.prepare(request)
        for index, chunk in enumerate(chunks):
            if (
                self.controls.cut_stream_after is not None
                and index >= self.controls.cut_stream_after
            ):
                # Drop the connection mid-stream, as a crashed upstream would.
                if request.transport is not None:
                    request.transport.close()
                return response
            if self.controls.chunk_delay and index:
                await asyncio.sleep(self.controls.chunk_delay)
            await response.write(chunk)
        await response.write_eof()
        return response
