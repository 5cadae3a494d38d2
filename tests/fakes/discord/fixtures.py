"""pytest fixtures: ``fake_discord`` (a started FakeDiscord with discord.py pointed at it)
and ``discord_client_factory`` (real ``discord.Client`` instances that are always closed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import discord
import discord.gateway
import discord.http
import pytest
import pytest_asyncio

from openclaw_voice.discord.endpoints import apply_endpoints, make_connector
from tests.fakes.discord.server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)


@contextlib.contextmanager
def restored_discord_endpoints() -> Any:
    """Put discord.py's class-level REST base and gateway URL back afterwards."""
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        yield
    finally:
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


@contextlib.asynccontextmanager
async def running_fake(**kwargs: Any) -> AsyncIterator[FakeDiscord]:
    """Start a fake, point discord.py at it, stop it and restore the defaults after."""
    if not discord.opus.is_loaded():
        discord.opus._load_default()
    fake = FakeDiscord(**kwargs)
    with restored_discord_endpoints():
        await fake.start()
        try:
            apply_endpoints(fake.endpoints)
            yield fake
        finally:
            await fake.stop()


@pytest_asyncio.fixture
async def fake_discord(request: pytest.FixtureRequest) -> AsyncIterator[FakeDiscord]:
    """A started fake; ``@pytest.mark.parametrize('fake_discord', [{...}], indirect=True)``
    passes constructor arguments (e.g. ``{"dave_protocol_version": 0}``)."""
    kwargs: dict[str, Any] = getattr(request, "param", None) or {}
    async with running_fake(**kwargs) as fake:
        yield fake
        errors = fake.recorder.of_kind("fake_error")
        assert not errors, f"the fake failed internally: {errors}"


ClientFactory = Callable[..., Awaitable[Any]]


class ClientRunner:
    """Starts real clients against the fake and closes them all at teardown."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self._running: list[tuple[discord.Client, asyncio.Task[None]]] = []

    async def start(
        self, client: ClientT, *, wait_ready: bool = True, within: float = 15.0
    ) -> ClientT:
        ready = asyncio.Event()

        previous = getattr(client, "on_ready", None)

        async def on_ready() -> None:
            ready.set()
            if previous is not None:
                await previous()

        client.on_ready = on_ready  # type: ignore[attr-defined]
        task = asyncio.create_task(client.start(self.fake.token))
        self._running.append((client, task))
        if wait_ready:
            waiter = asyncio.create_task(ready.wait())
            done, _ = await asyncio.wait(
                {waiter, task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter not in done:
                waiter.cancel()
                if task in done:
                    task.result()
                raise TimeoutError("client did not become ready")
        return client

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every client needs to talk to the fake."""
        return {
            "connector": make_connector(self.fake.endpoints),
            "guild_ready_timeout": 0.05,
        }

    async def close(self) -> None:
        for client, task in reversed(self._running):
            for voice in list(client.voice_clients):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(voice.disconnect(force=True), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._running.clear()


@pytest_asyncio.fixture
async def discord_clients(fake_discord: FakeDiscord) -> AsyncIterator[ClientRunner]:
    runner = ClientRunner(fake_discord)
    try:
        yield runner
    finally:
        await runner.close()
