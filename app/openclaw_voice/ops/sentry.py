"""Sentry error reporting, with every outgoing event and breadcrumb redacted."""

from __future__ import annotations

import logging
from typing import Any, cast

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.types import Event, Hint

from openclaw_voice.ops.redaction import Redactor

__all__ = ["flush", "init_sentry", "set_user_context"]

# Probed every few seconds by HAProxy and Prometheus: tracing them would only burn quota.
_UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics", "/status"})


def init_sentry(
    *,
    dsn: str,
    environment: str,
    release: str,
    traces_sample_rate: float,
    redactor: Redactor,
) -> bool:
    """Start the Sentry client when ``dsn`` is set; return whether it was started."""
    if not dsn.strip():
        return False

    def before_send(event: Event, hint: Hint) -> Event | None:
        _tidy_structlog_logentry(event, hint)
        return _redact_event(redactor, event)

    def before_send_transaction(event: Event, hint: Hint) -> Event | None:
        return _redact_event(redactor, event)

    def traces_sampler(context: dict[str, Any]) -> float:
        request = context.get("aiohttp_request")
        if getattr(request, "path", None) in _UNTRACED_PATHS:
            return 0.0
        parent_sampled = context.get("parent_sampled")
        if parent_sampled is not None:
            return 1.0 if parent_sampled else 0.0
        return traces_sample_rate

    def before_breadcrumb(crumb: dict[str, Any], hint: Hint) -> dict[str, Any] | None:
        record = hint.get("log_record")
        if isinstance(record, logging.LogRecord) and isinstance(record.msg, dict):
            crumb["message"] = str(record.msg.get("event", ""))
        return cast("dict[str, Any]", redactor.redact(crumb))

    sentry_sdk.init(
        dsn=dsn.strip(),
        environment=environment,
        release=release,
        traces_sample_rate=traces_sample_rate,
        traces_sampler=traces_sampler,
        # send_default_pii is left at its default, False: passing it is deprecated in
        # recent 2.x releases, and its replacement (data_collection) would also switch
        # off the SDK's own key-name scrubber.
        #
        # Frame locals hold raw tokens and request objects whose reprs are cut at a
        # length limit, which can split a secret past what redaction recognises.
        include_local_variables=False,
        before_send=before_send,
        before_send_transaction=before_send_transaction,
        before_breadcrumb=before_breadcrumb,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    return True


def set_user_context(user_id: int | None, guild_id: int | None) -> None:
    """Attach the Discord user and guild ids (never names or tokens) to later events."""
    sentry_sdk.set_user({"id": str(user_id)} if user_id is not None else None)
    if guild_id is None:
        sentry_sdk.get_isolation_scope().remove_tag("guild_id")
    else:
        sentry_sdk.set_tag("guild_id", str(guild_id))


def flush(timeout: float = 2.0) -> None:
    """Send queued events, waiting at most ``timeout`` seconds (for shutdown)."""
    sentry_sdk.flush(timeout=timeout)


def _redact_event(redactor: Redactor, event: Event) -> Event:
    # Sentry has already serialised the event to plain data, so every string in it
    # (message, exception values, breadcrumbs, extra, request, tags) is reached here.
    return cast("Event", redactor.redact(event))


def _tidy_structlog_logentry(event: Event, hint: Hint) -> None:
    """Use the event text as the message of a structlog record, not its whole dict."""
    record = hint.get("log_record")
    logentry = event.get("logentry")
    if (
        isinstance(record, logging.LogRecord)
        and isinstance(record.msg, dict)
        and isinstance(logentry, dict)
    ):
        text = str(record.msg.get("event", ""))
        logentry.update({"message": text, "formatted": text, "params": []})
