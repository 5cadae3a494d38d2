"""The fake Discord on its own event-loop thread, for synchronous tests (the deploy tests),
where bots in other processes or hosts connect to it.

    with ThreadedFakeDiscord(host="10.77.3.1", guilds=4) as threaded:
        record = threaded.call(threaded.fake.invoke_slash_command("voice status"))
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.fakes.discord.server import FakeDiscord

T = TypeVar("T")


class ThreadedFakeDiscord:
    """Starts a :class:`FakeDiscord` on a daemon thread's loop; :meth:`call` runs a
    coroutine there and waits for its result."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-discord", daemon=True
        )
        self._fake: FakeDiscord | None = None

    @property
    def fake(self) -> FakeDiscord:
        if self._fake is None:
            raise RuntimeError("ThreadedFakeDiscord.start() first")
        return self._fake

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the fake's loop without waiting; cancelling the future cancels it
        (e.g. a fault armed to fire on an event that did not happen)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def start(self) -> FakeDiscord:
        self._thread.start()

        async def start() -> FakeDiscord:
            fake = FakeDiscord(**self._options)
            # The bots run in other processes on busy hosts: give discord.py's voice
            # handshake room between the two voice updates (see on_bot_voice_state).
            fake.voice_update_gap = 0.05
            await fake.start()
            return fake

        self._fake = self.call(start())
        return self._fake

    def stop(self) -> None:
        if self._fake is not None:
            self.call(self._fake.stop())
            self._fake = None
        if self._thread.is_alive():
            self.call(_cancel_the_rest())
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ThreadedFakeDiscord:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _cancel_the_rest() -> None:
    """Cancel what the server left running (e.g. handlers of connections still open)."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
