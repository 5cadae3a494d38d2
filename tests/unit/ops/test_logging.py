"""configure_logging: the spec's JSON shape, one pipeline for structlog and stdlib, redaction."""

from __future__ import annotations

import errno
import io
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

from openclaw_voice.ops.logging import configure_logging
from openclaw_voice.ops.redaction import REDACTED, Redactor

SECRET = "sentinel-log-secret-9000"
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe." + "Zx9_-aB3" * 5
SPEC_FIELDS = [
    "timestamp",
    "level",
    "service",
    "userId",
    "guildId",
    "sessionId",
    "traceId",
    "message",
    "error",
    "context",
]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def _configure(stream: io.StringIO, level: str = "debug", **kwargs: Any) -> None:
    configure_logging(
        level=level,
        service="openclaw-voice",
        environment=kwargs.pop("environment", "production"),
        redactor=Redactor([SECRET]),
        stream=stream,
        **kwargs,
    )


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_spec_field_in_order_with_iso_utc_timestamp(stream: io.StringIO) -> None:
    _configure(stream)
    structlog.get_logger("openclaw_voice.test").info("joined channel", channel="general")
    [line] = _lines(stream)
    assert list(line) == SPEC_FIELDS
    assert line["level"] == "info"
    assert line["service"] == "openclaw-voice"
    assert line["message"] == "joined channel"
    assert line["error"] is None
    assert line["context"] == {"channel": "general", "logger": "openclaw_voice.test"}
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert line["timestamp"].endswith(("Z", "+00:00"))


def test_bound_ids_camel_and_snake_case(stream: io.StringIO) -> None:
    _configure(stream)
    structlog.contextvars.bind_contextvars(
        user_id=123456789012345678, guildId=987654321098765432, session_id="s-1"
    )
    log = structlog.get_logger("t")
    log.info("turn", trace_id="tr-1", traceId="tr-camel")
    log.info("nulls kept", session_id=None)
    first, second = _lines(stream)
    assert first["userId"] == "123456789012345678"
    assert first["guildId"] == "987654321098765432"
    assert first["sessionId"] == "s-1"
    assert first["traceId"] == "tr-camel"
    assert "trace_id" not in first["context"]
    assert second["sessionId"] is None


def test_context_nests_everything_else(stream: io.StringIO) -> None:
    _configure(stream)
    structlog.get_logger("t").warning(
        "provider slow",
        context={"provider": "openai"},
        message="caller field",
        service="other",
        latency_ms=812,
    )
    [line] = _lines(stream)
    assert list(line) == SPEC_FIELDS
    assert line["service"] == "openclaw-voice"
    assert line["message"] == "provider slow"
    assert line["level"] == "warning"
    assert line["context"] == {
        "provider": "openai",
        "message": "caller field",
        "service": "other",
        "latency_ms": 812,
        "logger": "t",
    }


def test_non_dict_context_value_is_kept(stream: io.StringIO) -> None:
    _configure(stream)
    structlog.get_logger("t").info("x", context="plain")
    assert _lines(stream)[0]["context"]["context"] == "plain"


def test_secrets_redacted_in_message_and_context(stream: io.StringIO) -> None:
    _configure(stream)

    class Headers:
        def __repr__(self) -> str:
            return f"Headers(Authorization='Bot {TOKEN}')"

    structlog.get_logger("t").info(
        "calling with %s", SECRET, headers=Headers(), nested={"keys": [SECRET]}
    )
    output = stream.getvalue()
    assert SECRET not in output
    assert TOKEN not in output
    [line] = _lines(stream)
    assert line["message"] == f"calling with {REDACTED}"
    assert line["context"]["headers"] == f"Headers(Authorization='Bot {REDACTED}')"
    assert line["context"]["nested"] == {"keys": [REDACTED]}


def test_logged_exception_is_redacted_with_stack(stream: io.StringIO) -> None:
    _configure(stream)
    log = structlog.get_logger("t")
    try:
        raise ConnectionError(f"login refused for token {TOKEN} and {SECRET}")
    except ConnectionError:
        log.exception("gateway login failed", error="caller supplied")
    output = stream.getvalue()
    assert TOKEN not in output
    assert SECRET not in output
    [line] = _lines(stream)
    assert line["level"] == "error"
    assert line["error"]["type"] == "ConnectionError"
    assert line["error"]["message"] == f"login refused for token {REDACTED} and {REDACTED}"
    assert "Traceback (most recent call last)" in line["error"]["stack"]
    assert "test_logging.py" in line["error"]["stack"]
    assert line["context"]["error_detail"] == "caller supplied"


def test_error_field_forms(stream: io.StringIO) -> None:
    _configure(stream)
    log = structlog.get_logger("t")

    class ProviderError(Exception):
        pass

    log.warning("exception value", error=ProviderError(f"bad key {SECRET}"))
    log.warning("text value", error=f"timed out {SECRET}")
    log.warning("dict value", error={"type": "X", "message": "y"})
    first, second, third = _lines(stream)
    assert first["error"]["type"].endswith("test_error_field_forms.<locals>.ProviderError")
    assert first["error"]["message"] == f"bad key {REDACTED}"
    assert second["error"] == {"type": None, "message": f"timed out {REDACTED}"}
    assert third["error"] == {"type": "X", "message": "y"}


def test_stdlib_logging_uses_the_same_pipeline(stream: io.StringIO) -> None:
    _configure(stream)
    structlog.contextvars.bind_contextvars(guild_id=42)
    logging.getLogger("discord.gateway").info(
        "identify with %s", TOKEN, extra={"shard": 0, "note": SECRET}
    )
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved %s", SECRET)
    first, second = _lines(stream)
    for line in (first, second):
        assert list(line) == SPEC_FIELDS
        assert line["guildId"] == "42"
    assert first["message"] == f"identify with {REDACTED}"
    assert first["context"] == {"logger": "discord.gateway", "shard": 0, "note": REDACTED}
    assert second["level"] == "error"
    assert second["error"]["type"] == "KeyError"
    assert "Traceback" in second["error"]["stack"]
    assert second["message"] == f"Task exception was never retrieved {REDACTED}"
    assert SECRET not in stream.getvalue()
    assert TOKEN not in stream.getvalue()


def test_warnings_are_routed_into_logging(stream: io.StringIO) -> None:
    _configure(stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated {SECRET}", DeprecationWarning, stacklevel=1)
    [line] = _lines(stream)
    assert line["context"]["logger"] == "py.warnings"
    assert SECRET not in line["message"]


def test_level_filters_both_pipelines(stream: io.StringIO) -> None:
    _configure(stream, level="warning")
    structlog.get_logger("t").info("hidden")
    logging.getLogger("aiohttp").info("hidden too")
    structlog.get_logger("t").warning("shown")
    logging.getLogger("aiohttp").error("shown too")
    assert [line["message"] for line in _lines(stream)] == ["shown", "shown too"]
    assert logging.getLogger().level == logging.WARNING


def test_invalid_level_falls_back_to_info(stream: io.StringIO) -> None:
    _configure(stream, level="verbose")
    assert logging.getLogger().level == logging.INFO
    structlog.get_logger("t").debug("hidden")
    structlog.get_logger("t").info("shown")
    assert [line["message"] for line in _lines(stream)] == ["shown"]


def test_configure_twice_does_not_duplicate(stream: io.StringIO) -> None:
    _configure(io.StringIO())
    _configure(stream)
    _configure(stream)
    structlog.get_logger("t").info("once")
    logging.getLogger("lib").warning("once too")
    assert [line["message"] for line in _lines(stream)] == ["once", "once too"]
    _our_handler()  # exactly one


def _our_handler() -> logging.Handler:
    [handler] = [h for h in logging.getLogger().handlers if type(h).__name__ == "_PipelineHandler"]
    return handler


def test_unformattable_record_reports_redacted_error(stream: io.StringIO) -> None:
    _configure(stream)
    # Too few arguments: the stdlib would print the raw record, secret included, to
    # stderr. Sent to our handler alone because pytest's capture handler raises instead.
    record = logging.LogRecord("lib", logging.WARNING, __file__, 1, "%s and %s", (SECRET,), None)
    _our_handler().handle(record)
    [line] = _lines(stream)
    assert line["message"] == "log record could not be formatted"
    assert line["error"]["type"] == "TypeError"
    assert line["context"] == {"logger": "lib"}
    assert SECRET not in stream.getvalue()


def test_handle_error_on_closed_stream_is_silent(stream: io.StringIO) -> None:
    _configure(stream)
    stream.close()
    record = logging.LogRecord("lib", logging.WARNING, __file__, 1, "%s %s", ("x",), None)
    _our_handler().handle(record)  # must not raise


def test_handle_error_without_active_exception(stream: io.StringIO) -> None:
    _configure(stream)
    _our_handler().handleError(logging.LogRecord("lib", logging.INFO, __file__, 1, "m", (), None))
    assert _lines(stream)[0]["error"] is None


def test_auto_renderer_is_json_off_terminal_or_outside_development() -> None:
    for stream, environment in ((io.StringIO(), "development"), (_Tty(), "production")):
        _configure(stream, environment=environment)
        structlog.get_logger("t").info("json")
        assert json.loads(stream.getvalue())["message"] == "json"


def test_auto_renderer_is_console_on_development_terminal() -> None:
    stream = _Tty()
    _configure(stream, environment="development")
    structlog.get_logger("t").info("human", user_id=7)
    output = stream.getvalue()
    assert "human" in output
    assert "userId" in output
    with pytest.raises(ValueError, match="Expecting value"):
        json.loads(output)


def test_console_renderer_redacts_and_prints_stack(stream: io.StringIO) -> None:
    _configure(stream, renderer="console")
    try:
        raise RuntimeError(f"boom {SECRET}")
    except RuntimeError:
        structlog.get_logger("t").exception("failed", token=TOKEN)
    output = stream.getvalue()
    assert "failed" in output
    assert "Traceback (most recent call last)" in output
    assert f"RuntimeError: boom {REDACTED}" in output
    assert SECRET not in output
    assert TOKEN not in output


def test_explicit_json_renderer_on_terminal() -> None:
    stream = _Tty()
    _configure(stream, environment="development", renderer="json")
    structlog.get_logger("t").info("forced json")
    assert json.loads(stream.getvalue())["message"] == "forced json"


def test_stream_without_isatty_counts_as_not_a_terminal() -> None:
    stream = io.StringIO()
    stream.close()
    _configure(stream, environment="development")


def test_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(
        level="info", service="svc", environment="production", redactor=Redactor([SECRET])
    )
    structlog.get_logger("t").info("to stdout %s", SECRET)
    out = capsys.readouterr().out
    assert json.loads(out)["message"] == f"to stdout {REDACTED}"


class _Disk(io.StringIO):
    """A log file on a disk that can be full."""

    name = "/var/log/bot.log"

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, f"No space left on device: {SECRET}")
        return super().write(text)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unwritable_log_is_reported_on_stderr_rate_limited_and_the_gap_marked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, clock = _Disk(), _Clock()
    _configure(disk)
    monkeypatch.setattr(_our_handler(), "_clock", clock)
    log = structlog.get_logger("t")
    log.info("before")
    disk.full = True
    for n in range(200):
        log.error("while full", n=n)  # no exception, no traceback per record
        clock.now += 0.1
    clock.now += 60
    log.error("a minute later")
    disk.full = False
    clock.now += 5
    log.info("after")

    err = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["message"]) for line in err] == [
        ("error", "log records cannot be written"),
        ("error", "log records cannot be written"),  # a minute on, not per record
        ("warning", "log records are written again"),
    ]
    assert [line["context"]["records_failed"] for line in err] == [1, 201, 201]
    assert err[0]["error"]["type"] == "OSError"
    assert "No space left on device" in err[0]["error"]["message"]
    assert SECRET not in json.dumps(err)
    assert err[0]["context"]["destination"] == "/var/log/bot.log"
    assert err[2]["context"]["seconds"] == pytest.approx(85.0)
    logged = [line["message"] for line in _lines(disk)]
    assert logged == ["before", "after", "log records are written again"]


def test_log_failures_start_over_after_a_recovery(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, clock = _Disk(), _Clock()
    _configure(disk)
    monkeypatch.setattr(_our_handler(), "_clock", clock)
    log = structlog.get_logger("t")
    for _ in range(2):
        disk.full = True
        log.error("lost")
        disk.full = False
        log.info("written")
        clock.now += 1  # well within the report interval: a new failure is still said
    err = [json.loads(line)["message"] for line in capsys.readouterr().err.splitlines()]
    assert err == ["log records cannot be written", "log records are written again"] * 2


def test_a_failing_stderr_log_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    disk = _Disk()
    monkeypatch.setattr(sys, "stderr", disk)
    _configure(disk)
    disk.full = True
    structlog.get_logger("t").error("nowhere to go")  # the report fails too, silently
    disk.full = False
    structlog.get_logger("t").info("back")
    lines = [line["message"] for line in _lines(disk)]
    assert lines == ["back", "log records are written again"]  # the gap marked once
