"""Server-sent event assembly from lines."""

from __future__ import annotations

from collections.abc import AsyncIterator

from openclaw_voice.agent.sse import event_data


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def events(*items: str) -> list[str]:
    return [data async for data in event_data(lines(*items))]


async def test_one_data_line_per_event() -> None:
    assert await events("data: {}", "", "data: [DONE]", "") == ["{}", "[DONE]"]


async def test_data_lines_of_one_event_are_joined_with_newlines() -> None:
    assert await events("data: a", "data:b", "", "") == ["a\nb"]


async def test_comments_other_fields_and_blank_runs_are_skipped() -> None:
    items = (": keep-alive", "", "event: message", "id: 7", "retry: 10", "data: x", "", "")
    assert await events(*items) == ["x"]


async def test_only_one_leading_space_is_removed() -> None:
    assert await events("data:  two spaces", "") == [" two spaces"]


async def test_an_event_left_open_at_the_end_is_still_delivered() -> None:
    assert await events("data: [DONE]") == ["[DONE]"]


async def test_no_events() -> None:
    assert await events() == []
