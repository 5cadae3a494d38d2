"""Tracebacks a test's own code logged, without another test's leftovers.

An SDK client a previous test left open (openai's ``AsyncHttpxClientWrapper``) schedules
its own ``aclose`` on whatever loop runs when the garbage collector finds it; its transport
belongs to the earlier test's closed loop, so that task fails with "Event loop is closed"
and asyncio logs it here. Nothing of the running test's loop can fail that way.
"""

from __future__ import annotations

import logging


def _earlier_loop_leftover(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return (
        record.name == "asyncio"
        and isinstance(error, RuntimeError)
        and str(error) == "Event loop is closed"
    )


def logged_tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """Messages of the records that carry a traceback (leftovers of closed loops excepted)."""
    return [r.getMessage() for r in records if r.exc_info and not _earlier_loop_leftover(r)]
