"""Structured logging: structlog and the stdlib ``logging`` tree share one redacting pipeline.

Every line, ours or a library's (discord.py, aiohttp, asyncio), is rendered as one JSON
object with the spec's fields, or as human text on a development terminal.

When the destination refuses lines (a full disk, a read-only filesystem, a closed pipe),
that is said on stderr: once when it starts, then at most every
``WRITE_FAILURE_REPORT_SECONDS`` with the count of records that failed so far, and once
when lines get through again (also into the log itself, marking the gap). A failed
record stays in the stream's buffer while it has room, to be written late; beyond that
it is dropped. Never a traceback per record, and the process never stops for its log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from openclaw_voice.ops.redaction import Redactor, resolve_exc_info, safe_str

__all__ = ["configure_logging"]

# The bound ids, under the spec's names, and the snake_case spellings Python code uses.
_ID_ALIASES: dict[str, str] = {
    "userId": "userId",
    "user_id": "userId",
    "guildId": "guildId",
    "guild_id": "guildId",
    "sessionId": "sessionId",
    "session_id": "sessionId",
    "traceId": "traceId",
    "trace_id": "traceId",
}
_ID_FIELDS = ("userId", "guildId", "sessionId", "traceId")
# While log lines cannot be written, stderr hears about it at most this often.
WRITE_FAILURE_REPORT_SECONDS = 60.0


class _PipelineHandler(logging.StreamHandler[TextIO]):
    """The one root handler `configure_logging` owns; its type marks it for replacement."""

    def __init__(
        self,
        stream: TextIO,
        redactor: Redactor,
        service: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self._redactor = redactor
        self._service = service
        self._clock = clock
        self._write_failed = False  # during one emit
        self._failing_since: float | None = None
        self._reported_at = 0.0
        self._failed = 0  # records whose write failed since the failures began

    def emit(self, record: logging.LogRecord) -> None:
        self._write_failed = False
        super().emit(record)
        if self._failing_since is not None and not self._write_failed:
            self._writes_recovered(self._failing_since)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self._write_failed = True
            self._write_failure(error)
            return
        # The stdlib default prints the raw record (message and arguments) to stderr,
        # which would bypass redaction; report the failure as a redacted line instead.
        line = self._line("error", "log record could not be formatted", error)
        line["context"] = {"logger": record.name}
        try:
            self.stream.write(json.dumps(line) + self.terminator)
            self.flush()
        except Exception:  # noqa: S110 - a closed stream leaves nowhere to report to
            pass

    def _write_failure(self, error: OSError) -> None:
        """A record could not be written; stderr hears of it, rate-limited."""
        now = self._clock()
        self._failed += 1
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._reported_at < WRITE_FAILURE_REPORT_SECONDS:
            return
        self._reported_at = now
        line = self._line("error", "log records cannot be written", error)
        line["context"] = {
            "destination": self._destination(),
            "records_failed": self._failed,
            "next_report_within_seconds": WRITE_FAILURE_REPORT_SECONDS,
        }
        _write_line(sys.stderr, line)

    def _writes_recovered(self, failing_since: float) -> None:
        line = self._line("warning", "log records are written again", None)
        line["context"] = {
            "destination": self._destination(),
            "records_failed": self._failed,
            "seconds": round(self._clock() - failing_since, 3),
        }
        self._failing_since, self._failed = None, 0
        _write_line(sys.stderr, line)
        if self.stream is not sys.stderr:
            _write_line(self.stream, line)  # the gap, marked in the log itself

    def _destination(self) -> str:
        return str(getattr(self.stream, "name", type(self.stream).__name__))

    def _line(self, level: str, message: str, error: BaseException | None) -> dict[str, Any]:
        detail = None
        if error is not None:
            detail = {
                "type": _type_name(error),
                "message": self._redactor.redact_text(safe_str(error)),
            }
        return {
            "timestamp": _now(),
            "level": level,
            "service": self._service,
            **dict.fromkeys(_ID_FIELDS),
            "message": message,
            "error": detail,
            "context": {},
        }


def _write_line(stream: TextIO, line: dict[str, Any]) -> None:
    try:
        stream.write(json.dumps(line) + "\n")
        stream.flush()
    except Exception:  # noqa: S110 - nowhere else to report to
        pass


def configure_logging(
    *,
    level: str,
    service: str,
    environment: str,
    redactor: Redactor,
    stream: TextIO | None = None,
    renderer: Literal["json", "console", "auto"] = "auto",
) -> None:
    """Route structlog and stdlib logging through one redacting renderer on ``stream``.

    ``stream`` defaults to stdout. ``renderer="auto"`` picks console output only for a
    terminal in development. Calling again replaces the previous configuration.
    """
    out = stream if stream is not None else sys.stdout
    use_console = renderer == "console" or (
        renderer == "auto" and environment == "development" and _isatty(out)
    )
    final: list[Processor] = (
        [_console_fields, structlog.dev.ConsoleRenderer(colors=_isatty(out))]
        if use_console
        else [_json_fields(service), structlog.processors.JSONRenderer()]
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from libraries get the context our own events get.
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _drop_formatter_attributes,
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _extract_error,
            redactor,
            *final,
        ],
    )
    handler = _PipelineHandler(out, redactor, service)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _PipelineHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(_level_number(level))
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            timestamper,
            _wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _wrap_for_formatter(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> tuple[tuple[EventDict], dict[str, Any]]:
    args, kwargs = structlog.stdlib.ProcessorFormatter.wrap_for_formatter(
        logger, method_name, event_dict
    )
    exc_info = event_dict.get("exc_info")
    if exc_info:
        # Handing the exception to the stdlib record too lets Sentry's logging
        # integration report it with its stack trace.
        kwargs["exc_info"] = exc_info
    return args, kwargs


def _drop_formatter_attributes(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    # Another handler's Formatter may already have stored these on the shared record;
    # they would otherwise show up as extras duplicating the message.
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


def _extract_error(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Turn ``exc_info`` or an ``error=`` value into the spec's ``error`` object."""
    exc_info = resolve_exc_info(event_dict.pop("exc_info", None))
    if exc_info is not None:
        if "error" in event_dict:
            event_dict["error_detail"] = event_dict.pop("error")
        event_dict["error"] = _error_object(exc_info[1])
        return event_dict
    error = event_dict.get("error")
    if isinstance(error, BaseException):
        event_dict["error"] = _error_object(error)
    elif error is not None and not isinstance(error, dict):
        event_dict["error"] = {"type": None, "message": str(error)}
    return event_dict


def _error_object(exc: BaseException) -> dict[str, str | None]:
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"type": _type_name(exc), "message": safe_str(exc), "stack": stack}


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _json_fields(service: str) -> Processor:
    def json_fields(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Lay the event out as the spec's fixed fields, everything else under ``context``."""
        ids = _pop_ids(event_dict)
        context: dict[str, Any] = {}
        nested = event_dict.pop("context", None)
        if isinstance(nested, dict):
            context.update(nested)
        elif nested is not None:
            context["context"] = nested
        timestamp = event_dict.pop("timestamp", None) or _now()
        level = event_dict.pop("level", method_name)
        message = event_dict.pop("event", None)
        error = event_dict.pop("error", None)
        context.update(event_dict)
        return {
            "timestamp": timestamp,
            "level": level,
            "service": service,
            **ids,
            "message": message,
            "error": error,
            "context": context,
        }

    return json_fields


def _console_fields(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Prepare for ConsoleRenderer: canonical id names, the stack printed below the line."""
    event_dict.update({k: v for k, v in _pop_ids(event_dict).items() if v is not None})
    error = event_dict.get("error")
    if isinstance(error, dict) and isinstance(error.get("stack"), str):
        event_dict["exception"] = error.pop("stack")
    return event_dict


def _pop_ids(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    ids: dict[str, Any] = dict.fromkeys(_ID_FIELDS)
    # snake_case first so an explicit camelCase value wins.
    for key in sorted(_ID_ALIASES, key=lambda k: k in _ID_FIELDS):
        if key in event_dict:
            value = event_dict.pop(key)
            if value is not None:
                # Snowflakes exceed 2**53; strings keep them exact for JSON consumers.
                ids[_ID_ALIASES[key]] = str(value)
    return ids


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    return number if number is not None else logging.INFO


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or stream-like objects without isatty
        return False


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
