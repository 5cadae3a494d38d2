"""Secrets never leave the process: the real ``openclaw-voice run`` at debug level.

A local REST server plays a Discord that echoes the token back in its error, the worst
case; a local Sentry receiver takes the real sentry-sdk transport's events. Neither the
process output nor any Sentry event may contain a sentinel secret.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.cli import finish, run_cli, start_cli
from tests.fakes.sentry import SentryReceiver

DISCORD_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"
SENTINELS = {
    "DISCORD_TOKEN": DISCORD_TOKEN,
    "STT_API_KEY": "sentinel-stt-key-7f3a9c",
    "TTS_API_KEY": "sentinel-tts-key-1b8e2d",
    "OPENAI_API_KEY": "sk-proj-sentinelOpenAIkey000111222333",
    "ELEVENLABS_API_KEY": "sentinel-elevenlabs-key-44aa",
    "OPENCLAW_GATEWAY_TOKEN": "sentinel-gateway-token-9q8w7e",
}


@pytest.fixture
async def echoing_discord() -> AsyncIterator[str]:
    """REST that refuses the login with 403 and quotes the Authorization header back."""

    async def users_me(request: web.Request) -> web.Response:
        body = {"message": f"token {request.headers.get('Authorization')} is banned", "code": 0}
        return web.Response(status=403, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", users_me)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/v10"
    finally:
        await runner.cleanup()


def secrets_in(text: str, sentinels: dict[str, str]) -> list[str]:
    return [name for name, value in sentinels.items() if value in text]


async def test_run_never_leaks_secrets_to_output_or_sentry(echoing_discord: str) -> None:
    async with SentryReceiver() as sentry:
        sentinels = {**SENTINELS, "SENTRY_DSN": sentry.dsn}
        env = {
            **sentinels,
            "LOG_LEVEL": "debug",
            "STT_PROVIDER": "openai,elevenlabs",
            "TTS_PROVIDER": "elevenlabs",
            "AGENT_PROVIDER": "openclaw",
            "OPENCLAW_GATEWAY_URL": "http://127.0.0.1:9",
            "DISCORD_API_BASE": echoing_discord,
            "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/",
            "OPS_PORT": "0",
        }
        result = await finish(await start_cli("run", env=env))
        events = await sentry.wait_for_events(1, timeout=10)

    assert result.returncode == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    failure = [
        line for line in lines if line["message"] == "the Discord client stopped with an error"
    ]
    assert failure, result.stdout
    assert "[REDACTED]" in failure[0]["error"]["message"]
    assert "Traceback" not in result.stderr
    assert secrets_in(result.output, sentinels) == []

    event_text = json.dumps(events)
    assert "403 Forbidden" in event_text
    assert "[REDACTED]" in event_text
    # The DSN's public key is the receiver's own address, sent as a header, not in events.
    assert secrets_in(event_text, SENTINELS) == []


def test_check_at_debug_level_never_prints_secrets() -> None:
    result = run_cli(
        "check",
        env={**SENTINELS, "LOG_LEVEL": "debug", "STT_PROVIDER": "openai"},
    )
    assert result.returncode == 0, result.output
    assert secrets_in(result.output, SENTINELS) == []
