"""Helpers for consuming agent replies in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openclaw_voice.errors import ProviderError

WAIT = 5.0  # generous bound on waiting for an event that should come at once


async def collect(replies: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in replies]


async def failure(replies: AsyncIterator[str]) -> tuple[list[str], ProviderError]:
    """The deltas received before the reply failed, and the error it failed with."""
    received: list[str] = []

    async def drain() -> None:
        async for delta in replies:
            received.append(delta)

    with pytest.raises(ProviderError) as caught:
        await drain()
    return received, caught.value
