"""Real sentry-sdk, real HTTP: what reaches Sentry is redacted and carries ids only."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import sentry_sdk
import structlog
from aiohttp import web

from openclaw_voice.ops.logging import configure_logging
from openclaw_voice.ops.redaction import REDACTED, Redactor
from openclaw_voice.ops.sentry import flush, init_sentry, set_user_context
from tests.fakes.sentry import SentryReceiver, parse_envelope

SECRET = "sentinel-sentry-secret-4242"
TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe." + "Qw3_-rT7" * 5
USER_ID = 123456789012345678
GUILD_ID = 876543210987654321


@pytest.fixture
async def receiver() -> AsyncIterator[SentryReceiver]:
    async with SentryReceiver() as receiver:
        yield receiver


@pytest.fixture
async def sentry(receiver: SentryReceiver) -> AsyncIterator[SentryReceiver]:
    """The receiver, with sentry-sdk's global state reset once the test is done."""
    yield receiver
    # Closing flushes through the receiver, which needs this loop free: close off-loop.
    await asyncio.to_thread(sentry_sdk.get_client().close, 5.0)
    sentry_sdk.get_global_scope().set_client(None)
    for scope in (
        sentry_sdk.get_global_scope(),
        sentry_sdk.get_isolation_scope(),
        sentry_sdk.get_current_scope(),
    ):
        scope.clear()


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


def _init(dsn: str, traces_sample_rate: float = 1.0) -> bool:
    return init_sentry(
        dsn=dsn,
        environment="staging",
        release="openclaw-discord-voice@0.1.0",
        traces_sample_rate=traces_sample_rate,
        redactor=Redactor([SECRET]),
    )


def _raise_with_secrets() -> None:
    raise RuntimeError(f"voice login failed: token={TOKEN} secret={SECRET}")


async def test_exception_event_is_redacted_and_has_ids_only(sentry: SentryReceiver) -> None:
    assert _init(sentry.dsn)
    set_user_context(USER_ID, GUILD_ID)
    logging.getLogger("discord.client").warning("connecting with %s", TOKEN)
    sentry_sdk.set_extra("config", {"discord_token": TOKEN, "note": SECRET})
    sentry_sdk.set_tag("provider_key", SECRET)
    try:
        _raise_with_secrets()
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)

    [event] = await sentry.wait_for_events(1)
    raw = json.dumps(event)
    assert SECRET not in raw
    assert TOKEN not in raw
    assert REDACTED in raw
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == f"voice login failed: token={REDACTED} secret={REDACTED}"
    assert event["user"] == {"id": str(USER_ID)}
    assert event["tags"]["guild_id"] == str(GUILD_ID)
    assert event["tags"]["provider_key"] == REDACTED
    assert event["extra"]["config"] == {"discord_token": REDACTED, "note": REDACTED}
    crumbs = [c["message"] for c in event["breadcrumbs"]["values"]]
    assert f"connecting with {REDACTED}" in crumbs
    assert event["environment"] == "staging"
    assert event["release"] == "openclaw-discord-voice@0.1.0"
    frames = exception["stacktrace"]["frames"]
    assert all("vars" not in frame for frame in frames)
    assert sentry.envelopes[0].auth is not None
    assert "sentry_key=publickey" in sentry.envelopes[0].auth


async def test_logged_errors_become_redacted_events(sentry: SentryReceiver) -> None:
    configure_logging(
        level="info",
        service="openclaw-voice",
        environment="staging",
        redactor=Redactor([SECRET]),
        stream=io.StringIO(),
    )
    assert _init(sentry.dsn)
    log = structlog.get_logger("openclaw_voice.discord")
    log.info("gateway ready", token=TOKEN)
    try:
        _raise_with_secrets()
    except RuntimeError:
        log.exception("voice connect failed", guild_id=GUILD_ID)
    logging.getLogger("discord.client").error("Ignoring exception in on_message: %s", SECRET)

    first, second = await sentry.wait_for_events(2)
    raw = json.dumps([first, second])
    assert SECRET not in raw
    assert TOKEN not in raw
    # A structlog event: its text as the message and the exception with its stack.
    assert first["logentry"]["message"] == "voice connect failed"
    assert first["logger"] == "openclaw_voice.discord"
    [exception] = first["exception"]["values"]
    assert exception["value"] == f"voice login failed: token={REDACTED} secret={REDACTED}"
    assert exception["stacktrace"]["frames"]
    crumbs = {c["message"] for c in first["breadcrumbs"]["values"]}
    assert "gateway ready" in crumbs
    # A plain stdlib record from a library.
    assert second["logentry"]["formatted"] == f"Ignoring exception in on_message: {REDACTED}"
    assert second["logger"] == "discord.client"


async def test_transactions_are_sampled_and_redacted(sentry: SentryReceiver) -> None:
    assert _init(sentry.dsn, traces_sample_rate=1.0)
    assert sentry_sdk.get_client().options["traces_sample_rate"] == 1.0
    with (
        sentry_sdk.start_transaction(op="voice.turn", name=f"turn {SECRET}"),
        sentry_sdk.start_span(op="tts", name=f"synthesize with {TOKEN}"),
    ):
        pass

    [transaction] = await sentry.wait_for_transactions(1)
    raw = json.dumps(transaction)
    assert SECRET not in raw
    assert TOKEN not in raw
    assert transaction["transaction"] == f"turn {REDACTED}"
    assert [span["description"] for span in transaction["spans"]] == [f"synthesize with {REDACTED}"]


async def test_traces_sample_rate_is_passed_through(sentry: SentryReceiver) -> None:
    assert _init(sentry.dsn, traces_sample_rate=0.1)
    assert sentry_sdk.get_client().options["traces_sample_rate"] == 0.1
    options = sentry_sdk.get_client().options
    assert not sentry_sdk.get_client().should_send_default_pii()
    assert options["include_local_variables"] is False


async def test_clearing_user_context_and_flush(sentry: SentryReceiver) -> None:
    assert _init(sentry.dsn)
    set_user_context(USER_ID, GUILD_ID)
    set_user_context(None, None)
    sentry_sdk.capture_message(f"no user here {SECRET}")
    # flush blocks until the transport has delivered, so run it off the receiver's loop.
    await asyncio.to_thread(flush, 5.0)
    [event] = sentry.events
    assert "user" not in event or not event["user"]
    assert "guild_id" not in event.get("tags", {})
    assert event["message"] == f"no user here {REDACTED}"


async def test_ops_probes_are_not_traced(sentry: SentryReceiver) -> None:
    assert _init(sentry.dsn, traces_sample_rate=1.0)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/health", ok)
    app.router.add_get("/voice/turn", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/health", "/voice/turn"):
                async with http.get(base + path) as response:
                    assert response.status == 200
        # Sent in order through one queue: a traced /health would arrive first.
        [transaction] = await sentry.wait_for_transactions(1)
        assert transaction["request"]["url"].endswith("/voice/turn")
    finally:
        await runner.cleanup()


def test_sampling_follows_the_parent_decision(sentry: SentryReceiver) -> None:
    assert _init(sentry.dsn, traces_sample_rate=0.5)
    sampler = sentry_sdk.get_client().options["traces_sampler"]
    assert sampler({"parent_sampled": True}) == 1.0
    assert sampler({"parent_sampled": False}) == 0.0
    assert sampler({"parent_sampled": None}) == 0.5


_SUBPROCESS = """
import sys
from openclaw_voice.ops.redaction import Redactor
from openclaw_voice.ops.sentry import flush, init_sentry, set_user_context

dsn, secret, token = sys.argv[1:4]
init_sentry(dsn=dsn, environment="production", release="r", traces_sample_rate=0.1,
            redactor=Redactor([secret]))
set_user_context(7, 8)
try:
    raise ValueError(f"child failed with {secret} and {token}")
except ValueError as exc:
    import sentry_sdk
    sentry_sdk.capture_exception(exc)
flush(10.0)
"""


async def test_receiver_takes_events_from_a_subprocess(sentry: SentryReceiver) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SUBPROCESS, sentry.dsn, SECRET, TOKEN
    )
    async with asyncio.timeout(30):
        assert await child.wait() == 0
    [event] = await sentry.wait_for_events(1)
    raw = json.dumps(event)
    assert SECRET not in raw
    assert TOKEN not in raw
    assert event["exception"]["values"][0]["value"] == (
        f"child failed with {REDACTED} and {REDACTED}"
    )
    assert event["user"] == {"id": "7"}
    assert event["tags"]["guild_id"] == "8"
    assert event["environment"] == "production"


@pytest.mark.parametrize("dsn", ["", "   "])
def test_empty_dsn_skips_init(dsn: str) -> None:
    assert not _init(dsn)
    assert not sentry_sdk.get_client().is_active()


def _envelope(*items: tuple[dict[str, Any], bytes]) -> bytes:
    parts = [json.dumps({"event_id": "abc"}).encode()]
    for headers, payload in items:
        parts += [json.dumps(headers).encode(), payload]
    return b"\n".join(parts) + b"\n"


def test_parse_envelope_with_and_without_lengths() -> None:
    event = json.dumps({"message": "hi"}).encode()
    body = b"\n".join(
        [
            b'{"event_id": "abc"}',
            json.dumps({"type": "event", "length": len(event)}).encode(),
            event,
            b'{"type": "attachment", "length": 3}',
            b"\x00\n\x01",  # a sized payload may contain newlines
            b"",  # stray blank line between items
            b'{"type": "client_report"}',
            b'{"discarded_events": []}',
            b'{"type": "raw"}',
            b"not json",
        ]
    )
    headers, items = parse_envelope(body)
    assert headers == {"event_id": "abc"}
    assert [item.headers["type"] for item in items] == [
        "event",
        "attachment",
        "client_report",
        "raw",
    ]
    assert [item.payload for item in items] == [
        {"message": "hi"},
        b"\x00\n\x01",
        {"discarded_events": []},
        b"not json",
    ]


async def test_receiver_encodings_and_errors(receiver: SentryReceiver) -> None:
    port = receiver.dsn.rsplit(":", 1)[1].split("/")[0]
    url = f"http://127.0.0.1:{port}/api/1/envelope/"
    event = json.dumps({"event_id": "1"}).encode()
    body = _envelope(({"type": "event"}, event), ({"type": "transaction"}, b'{"spans": []}'))
    async with aiohttp.ClientSession() as http:
        for encoding, data in (
            ("", body),
            ("gzip", gzip.compress(body)),
            ("deflate", zlib.compress(body)),
        ):
            headers = {"Content-Encoding": encoding} if encoding else {}
            async with http.post(url, data=data, headers=headers) as response:
                assert response.status == 200
        async with http.post(url, data=b"not json\n") as response:
            assert response.status == 400
        async with http.get(url) as response:
            assert response.status == 405
        async with http.post(url.replace("envelope", "store"), data=body) as response:
            assert response.status == 404
    assert len(await receiver.wait_for_events(3)) == 3
    assert len(await receiver.wait_for_transactions(3)) == 3
    with pytest.raises(TimeoutError, match="expected 4 event"):
        await receiver.wait_for_events(4, timeout=0.05)


async def test_receiver_requires_start() -> None:
    receiver = SentryReceiver()
    with pytest.raises(RuntimeError, match="not running"):
        _ = receiver.dsn
    with pytest.raises(RuntimeError, match="not running"):
        await receiver.wait_for_events(1, timeout=0.01)
    await receiver.stop()  # stopping an unstarted receiver is harmless
