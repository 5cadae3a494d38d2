"""Mapping SDK and transport failures to coded agent errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx2
import openai
import pytest

from openclaw_voice.agent.failures import (
    from_sdk,
    from_status,
    from_transport,
    retry_after_seconds,
)
from openclaw_voice.errors import ErrorKind

REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def status_error(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str = ""
) -> openai.APIStatusError:
    response = httpx2.Response(status, headers=headers or {}, text=text, request=REQUEST)
    return openai.APIStatusError("failed", response=response, body=body)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after": "whenever"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 27, 20, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 11, 27, 20, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds({"retry-after": later}, now=now.timestamp()) == 30


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.BAD_REQUEST),
        (401, ErrorKind.AUTH),
        (403, ErrorKind.AUTH),
        (404, ErrorKind.BAD_REQUEST),
        (408, ErrorKind.TIMEOUT),
        (413, ErrorKind.INPUT_TOO_LONG),
        (422, ErrorKind.BAD_REQUEST),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.UNAVAILABLE),
        (503, ErrorKind.UNAVAILABLE),
        (504, ErrorKind.TIMEOUT),
    ],
)
def test_statuses(status: int, kind: ErrorKind) -> None:
    error = from_status("p", status_error(status, {"error": {"message": "why"}}))
    assert error.kind is kind
    assert error.status == status
    assert error.detail == f"p: HTTP {status}: why"


def test_a_404_with_a_hint_is_not_configured() -> None:
    error = from_status("p", status_error(404, text="Not Found"), not_found="enable it")
    assert error.kind is ErrorKind.NOT_CONFIGURED
    assert error.detail == "p: enable it (HTTP 404: Not Found)"


def test_retry_after_is_read_for_rate_limits_and_unavailability() -> None:
    assert from_status("p", status_error(429, headers={"retry-after": "3"})).retry_after == 3
    assert from_status("p", status_error(503, headers={"retry-after": "4"})).retry_after == 4
    assert from_status("p", status_error(400, headers={"retry-after": "5"})).retry_after is None


def test_a_long_plain_body_is_cut_short() -> None:
    error = from_status("p", status_error(502, text="<html>\n" + "x" * 500))
    assert len(error.detail) < 250


def test_sdk_connection_and_timeout_errors() -> None:
    down = openai.APIConnectionError(request=REQUEST)
    down.__cause__ = ConnectionRefusedError("refused")
    assert from_sdk("p", down).kind is ErrorKind.UNAVAILABLE
    assert "ConnectionRefusedError" in from_sdk("p", down).detail
    assert from_sdk("p", openai.APITimeoutError(request=REQUEST)).kind is ErrorKind.TIMEOUT
    other = openai.APIError("odd", request=REQUEST, body=None)
    assert from_sdk("p", other).kind is ErrorKind.BAD_RESPONSE


def test_transport_errors_mid_stream() -> None:
    cut = from_transport("p", httpx2.RemoteProtocolError("incomplete chunked read"))
    assert cut.kind is ErrorKind.BAD_RESPONSE
    assert "before [DONE]" in cut.detail
    assert from_transport("p", httpx2.ReadTimeout("slow")).kind is ErrorKind.TIMEOUT
