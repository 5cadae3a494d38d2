"""One aiohttp session per REST provider, created on first use inside the event loop."""

from __future__ import annotations

import aiohttp


class LazyHttpSession:
    """Opens the session when first needed (a session must be made on a running loop) and
    reopens it if it was closed; :meth:`close` is safe to call more than once."""

    def __init__(self, timeout: aiohttp.ClientTimeout) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
