"""Server-sent events from a line stream: the ``data`` of each event, as the spec assembles it."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def event_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield each event's data (``data:`` fields joined by newlines; comments skipped).

    An event is dispatched at a blank line. One still open when the stream ends is yielded
    too: a server that omits the final blank line after ``data: [DONE]`` has still finished.
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)
