"""Turns openai SDK and transport failures into coded agent errors (7xxx)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import openai

from openclaw_voice.errors import ErrorKind, ProviderError, Stage, kind_for_status

_DETAIL_MAX = 200


def _transport_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, all transport errors) of the httpx family the SDK reads streams with.

    openai 3 reads through httpx2, openai 2 through httpx; a body read that fails mid-stream
    raises their exceptions unwrapped, so both are recognised when installed.
    """
    timeouts: list[type[Exception]] = []
    transport: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - depends on the installed SDK generation
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


TRANSPORT_TIMEOUTS, TRANSPORT_ERRORS = _transport_errors()


def agent_error(
    provider: str,
    kind: ErrorKind,
    detail: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    return ProviderError(
        Stage.AGENT, kind, provider, detail, status=status, retry_after=retry_after
    )


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's back-off hint: ``retry-after-ms``, or ``Retry-After`` seconds or date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:_DETAIL_MAX]
    text = error.response.text if error.response is not None else ""
    return " ".join(text.split())[:_DETAIL_MAX] or error.message[:_DETAIL_MAX]


def from_status(
    provider: str, error: openai.APIStatusError, *, not_found: str | None = None
) -> ProviderError:
    """An HTTP error status; ``not_found`` replaces the detail of a 404 (endpoint missing)."""
    status = error.status_code
    message = _server_message(error)
    if status == 404 and not_found is not None:
        return agent_error(
            provider, ErrorKind.NOT_CONFIGURED, f"{not_found} (HTTP 404: {message})", status=404
        )
    kind = kind_for_status(status)
    retry_after = None
    if kind in (ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE):
        retry_after = retry_after_seconds(error.response.headers)
    return agent_error(
        provider, kind, f"HTTP {status}: {message}", status=status, retry_after=retry_after
    )


def from_sdk(
    provider: str, error: openai.APIError, *, not_found: str | None = None
) -> ProviderError:
    """Any openai SDK error raised while sending the request or reading its response."""
    if isinstance(error, openai.APIStatusError):
        return from_status(provider, error, not_found=not_found)
    if isinstance(error, openai.APITimeoutError):
        return agent_error(provider, ErrorKind.TIMEOUT, "request timed out")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return agent_error(
            provider, ErrorKind.UNAVAILABLE, f"cannot connect: {type(cause).__name__}: {cause}"
        )
    return agent_error(provider, ErrorKind.BAD_RESPONSE, f"bad response: {error.message}")


def from_transport(provider: str, error: Exception) -> ProviderError:
    """A transport failure while the reply streams in: the answer would be cut short."""
    if isinstance(error, TRANSPORT_TIMEOUTS):
        return agent_error(provider, ErrorKind.TIMEOUT, "stream read timed out")
    return agent_error(
        provider,
        ErrorKind.BAD_RESPONSE,
        f"stream broke off before [DONE]: {type(error).__name__}: {error}",
    )
