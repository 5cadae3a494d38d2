"""``check --online`` against local stand-ins of Discord, OpenAI, ElevenLabs and OpenClaw."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from openclaw_voice.checks import offline_stack_checks, online_checks
from openclaw_voice.config import load_settings
from tests.cli import CliResult, finish, start_cli

GOOD = "good-credential-0123456789"


def _authorised(request: web.Request) -> bool:
    header = "".join(
        request.headers.get(name, "")
        for name in ("Authorization", "xi-api-key", "X-Goog-Api-Key", "Ocp-Apim-Subscription-Key")
    )
    return GOOD in header


async def _guarded(request: web.Request) -> web.Response:
    if _authorised(request):
        return web.json_response({"ok": True})
    return web.json_response({"message": "401: Unauthorized"}, status=401)


async def _bad_gateway(request: web.Request) -> web.Response:
    return web.Response(status=502)


@pytest.fixture
async def provider_apis() -> AsyncIterator[str]:
    app = web.Application()
    for path in (
        "/discord/users/@me",
        "/openai/v1/models",
        "/eleven/v1/user",
        "/claw/v1/models",
        "/google/v1/voices",
        "/azure/cognitiveservices/voices/list",
    ):
        app.router.add_get(path, _guarded)
    app.router.add_get("/broken/v1/models", _bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(base: str, **overrides: str) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": GOOD,
        "DISCORD_API_BASE": f"{base}/discord",
        "STT_PROVIDER": "openai,google,azure",
        "STT_API_KEY": GOOD,
        "GOOGLE_API_KEY": "google-key-0123456789",
        "AZURE_SPEECH_KEY": GOOD,
        "AZURE_SPEECH_REGION": "westeurope",
        "GOOGLE_TTS_BASE_URL": f"{base}/google",
        "AZURE_TTS_BASE_URL": f"{base}/azure",
        "TTS_PROVIDER": "elevenlabs",
        "TTS_API_KEY": "wrong-credential-000000",
        "AGENT_PROVIDER": "openclaw,openai",
        "OPENAI_API_KEY": GOOD,
        "OPENCLAW_GATEWAY_URL": f"{base}/claw",
        "OPENCLAW_GATEWAY_TOKEN": GOOD,
        "OPENAI_BASE_URL": f"{base}/openai/v1",
        "ELEVENLABS_BASE_URL": f"{base}/eleven",
        **overrides,
    }


async def test_online_checks_report_each_credential(provider_apis: str) -> None:
    results = await online_checks(load_settings(environment(provider_apis)))
    by_name = {result.name: result for result in results}
    assert by_name["DISCORD_TOKEN"].ok
    assert by_name["openai key"].ok
    assert not by_name["elevenlabs key"].ok
    assert by_name["elevenlabs key"].detail == "credential rejected (401)"
    assert by_name["OPENCLAW_GATEWAY_TOKEN"].ok
    assert by_name["google key"].detail == "credential rejected (401)"
    assert by_name["azure key"].ok
    # openai keys the STT chain and the agent with the same key: checked once.
    assert [result.name for result in results].count("openai key") == 1


async def test_online_checks_name_unreachable_and_unexpected(provider_apis: str) -> None:
    settings = load_settings(
        environment(
            provider_apis,
            DISCORD_API_BASE=f"http://127.0.0.1:{closed_port()}/api",
            OPENAI_BASE_URL=f"{provider_apis}/broken/v1",
            STT_PROVIDER="openai",
            TTS_PROVIDER="local",
            AGENT_PROVIDER="local",
        )
    )
    results = {result.name: result for result in await online_checks(settings)}
    assert results["DISCORD_TOKEN"].detail == "unreachable (ClientConnectorError)"
    assert results["openai key"].detail == "unexpected HTTP 502"


async def test_check_online_cli_fails_on_a_rejected_key(provider_apis: str) -> None:
    result: CliResult = await finish(
        await start_cli("check", "--online", env=environment(provider_apis))
    )
    assert result.returncode == 1
    assert "FAIL  elevenlabs key: credential rejected (401)" in result.stdout
    assert "ok    DISCORD_TOKEN: accepted (200)" in result.stdout
    assert GOOD not in result.output


def test_offline_stack_checks_all_pass_here() -> None:
    results = offline_stack_checks()
    assert [result.name for result in results if not result.ok] == []
    assert any("libopus" in result.detail for result in results)
