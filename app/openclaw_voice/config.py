"""Settings: built once at start from environment variables and an optional TOML file.

Every variable is declared once in :data:`VARIABLES` (name, what is expected, default per
environment, whether it is secret); the loader parses them all, then checks what the chosen
providers and environment require, and reports *every* problem in one go as
``ConfigError.problems`` — one line each, naming the variable, what was expected and what
was found (a secret's value is never echoed). A table-driven loader is used rather than
pydantic-settings because its errors name model fields, not variables, and a failed field
stops the cross-field checks that must be reported alongside it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast

from openclaw_voice.discord.endpoints import (
    DISCORD_API_BASE,
    DISCORD_GATEWAY_URL,
    DiscordEndpoints,
)
from openclaw_voice.secret import Secret

Environment = Literal["development", "staging", "production"]
ENVIRONMENTS: Final = ("development", "staging", "production")
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
STT_PROVIDERS: Final = ("openai", "elevenlabs", "google", "azure", "local")
TTS_PROVIDERS: Final = ("elevenlabs", "openai", "google", "azure", "local")
AGENT_PROVIDERS: Final = ("openclaw", "openai", "local")
CONFIG_FILE_VARIABLE: Final = "OPENCLAW_VOICE_CONFIG"

# Which variable holds the key of a provider when it is not first in its chain.
PROVIDER_KEY_VARIABLES: Final[Mapping[str, str]] = {
    "openai": "OPENAI_API_KEY",
    "elevenlabs": "ELEVENLABS_API_KEY",
    "google": "GOOGLE_API_KEY",
    "azure": "AZURE_SPEECH_KEY",
}


class ConfigError(Exception):
    """The configuration has problems; each entry of ``problems`` is one printable line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Invalid(ValueError):
    """A value that does not parse; the variable's ``expected`` text explains why."""


@dataclass(frozen=True)
class Variable:
    """One configuration variable: its name, parser, documentation and defaults."""

    name: str
    expected: str
    help: str
    parse: Callable[[str], object]
    default: Mapping[str, str] | str | None = None
    secret: bool = False

    def default_for(self, environment: str) -> str | None:
        if isinstance(self.default, Mapping):
            return self.default.get(environment)
        return self.default


# --- parsers ---------------------------------------------------------------------------


def _text(raw: str) -> str:
    if not raw.strip():
        raise _Invalid
    return raw.strip()


def _secret(raw: str) -> Secret:
    if not raw.strip() or any(ch.isspace() for ch in raw.strip()):
        raise _Invalid
    return Secret(raw.strip())


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise _Invalid
        return value

    return parse


def _chain(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        names = tuple(part.strip().lower() for part in raw.split(","))
        if not names or any(name not in choices for name in names) or len(set(names)) != len(names):
            raise _Invalid
        return names

    return parse


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise _Invalid from None
        if not low <= value <= high:
            raise _Invalid
        return value

    return parse


def _number(low: float, high: float, *, low_inclusive: bool = True) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise _Invalid from None
        above_low = value >= low if low_inclusive else value > low
        if not (above_low and value <= high):
            raise _Invalid
        return value

    return parse


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise _Invalid


_SNOWFLAKE = re.compile(r"^[0-9]{15,21}$")


def _snowflake(raw: str) -> int:
    if not _SNOWFLAKE.match(raw.strip()):
        raise _Invalid
    return int(raw.strip())


def _url(*schemes: str) -> Callable[[str], str]:
    pattern = re.compile(rf"^({'|'.join(schemes)})://[^\s/?#]+[^\s]*$")

    def parse(raw: str) -> str:
        value = raw.strip()
        if not pattern.match(value):
            raise _Invalid
        return value

    return parse


def _sentry_dsn(raw: str) -> Secret:
    value = raw.strip()
    if not re.match(r"^https?://[^\s@/]+@[^\s/]+/\S*[0-9]+$", value):
        raise _Invalid
    return Secret(value)


def _readable_file(raw: str) -> Path:
    path = Path(raw.strip()).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise _Invalid
    return path


def _directory(raw: str) -> Path:
    if not raw.strip():
        raise _Invalid
    return Path(raw.strip()).expanduser()


def _host(raw: str) -> str:
    value = raw.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$", value):
            raise _Invalid from None
    return value


def _agent_id(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", value):
        raise _Invalid
    return value


def _wake_name(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,31}$", value):
        raise _Invalid
    return value


def _language(raw: str) -> str:
    value = raw.strip().lower()
    if not re.match(r"^[a-z]{2}$", value):
        raise _Invalid
    return value


def _model(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$", value):
        raise _Invalid
    return value


def _shard_ids(raw: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise _Invalid from None
    if not ids or any(shard < 0 for shard in ids) or len(set(ids)) != len(ids):
        raise _Invalid
    return ids


# --- the variables ------------------------------------------------------------------------

_PROVIDER_DEFAULT: Final = {"development": "local"}

VARIABLES: Final[tuple[Variable, ...]] = (
    Variable(
        "APP_ENV",
        "one of development, staging, production",
        "Deployment environment; chooses the defaults marked per environment.",
        _choice(ENVIRONMENTS),
        "development",
    ),
    Variable(
        "DISCORD_TOKEN",
        "the bot token from the Discord developer portal",
        "Bot token. Required to run.",
        _secret,
        secret=True,
    ),
    Variable(
        "DISCORD_CLIENT_ID",
        "a Discord application id (a numeric snowflake)",
        "Application id of the bot (for invite links); optional.",
        _snowflake,
    ),
    Variable(
        "DISCORD_GUILD_ID",
        "a Discord guild id (a numeric snowflake)",
        "Sync slash commands to this guild only (instant); unset syncs them globally.",
        _snowflake,
    ),
    Variable(
        "DISCORD_API_BASE",
        "an http(s) URL",
        "REST base URL; override only for a Discord-compatible or test server.",
        _url("http", "https"),
        DISCORD_API_BASE,
    ),
    Variable(
        "DISCORD_GATEWAY_URL",
        "a ws(s) URL",
        "Gateway URL; override only for a Discord-compatible or test server.",
        _url("ws", "wss"),
        DISCORD_GATEWAY_URL,
    ),
    Variable(
        "DISCORD_CA_BUNDLE",
        "a readable PEM file",
        "Extra CA certificates trusted for Discord TLS (the voice websocket of a test server).",
        _readable_file,
    ),
    Variable(
        "STT_PROVIDER",
        f"a comma-separated fallback chain of {', '.join(STT_PROVIDERS)} (no repeats)",
        "Speech-to-text chain, first choice first. Development default: local.",
        _chain(STT_PROVIDERS),
        _PROVIDER_DEFAULT,
    ),
    Variable(
        "TTS_PROVIDER",
        f"a comma-separated fallback chain of {', '.join(TTS_PROVIDERS)} (no repeats)",
        "Text-to-speech chain, first choice first. Development default: local.",
        _chain(TTS_PROVIDERS),
        _PROVIDER_DEFAULT,
    ),
    Variable(
        "AGENT_PROVIDER",
        f"a comma-separated fallback chain of {', '.join(AGENT_PROVIDERS)} (no repeats)",
        "Agent chain, first choice first. Development default: local.",
        _chain(AGENT_PROVIDERS),
        _PROVIDER_DEFAULT,
    ),
    Variable(
        "STT_API_KEY",
        "an API key",
        "Key of the first STT provider.",
        _secret,
        secret=True,
    ),
    Variable(
        "TTS_API_KEY",
        "an API key",
        "Key of the first TTS provider.",
        _secret,
        secret=True,
    ),
    Variable(
        "OPENAI_API_KEY",
        "an API key",
        "OpenAI key (providers after the first).",
        _secret,
        secret=True,
    ),
    Variable(
        "ELEVENLABS_API_KEY",
        "an API key",
        "ElevenLabs key (providers after the first).",
        _secret,
        secret=True,
    ),
    Variable(
        "OPENAI_BASE_URL",
        "an http(s) URL",
        "OpenAI API base URL; for OpenAI-compatible servers (agent provider openai).",
        _url("http", "https"),
        "https://api.openai.com/v1",
    ),
    Variable(
        "ELEVENLABS_BASE_URL",
        "an http(s) URL",
        "ElevenLabs API base URL; override only for a compatible or test server.",
        _url("http", "https"),
        "https://api.elevenlabs.io",
    ),
    Variable("GOOGLE_API_KEY", "an API key", "Google Cloud API key.", _secret, secret=True),
    Variable("AZURE_SPEECH_KEY", "an API key", "Azure Speech key.", _secret, secret=True),
    Variable(
        "AZURE_SPEECH_REGION",
        "an Azure region name such as westeurope",
        "Azure Speech region; required with the azure provider.",
        _agent_id,
    ),
    Variable(
        "OPENCLAW_GATEWAY_URL",
        "an http(s) URL",
        "OpenClaw gateway base URL (its /v1/chat/completions endpoint must be enabled).",
        _url("http", "https"),
    ),
    Variable(
        "OPENCLAW_GATEWAY_TOKEN",
        "the gateway's bearer token",
        "OpenClaw gateway token.",
        _secret,
        secret=True,
    ),
    Variable(
        "OPENCLAW_AGENT_ID",
        "an agent id (letters, digits, '_', '-', '.'; at most 64)",
        "OpenClaw agent to talk to (model openclaw/<id>).",
        _agent_id,
        "main",
    ),
    Variable(
        "WAKE_NAME",
        "a name of 2 to 32 letters, digits, spaces or '-'",
        "What users call the bot; given to speech recognition as vocabulary.",
        _wake_name,
        "OpenClaw",
    ),
    Variable(
        "STT_LANGUAGE",
        "an ISO 639-1 language code such as en",
        "Language hint for speech recognition.",
        _language,
        "en",
    ),
    Variable(
        "OPENAI_STT_MODEL",
        "a model name",
        "OpenAI transcription model.",
        _model,
        "gpt-4o-mini-transcribe",
    ),
    Variable("OPENAI_TTS_MODEL", "a model name", "OpenAI speech model.", _model, "gpt-4o-mini-tts"),
    Variable("OPENAI_TTS_VOICE", "a voice name", "OpenAI speech voice.", _model, "alloy"),
    Variable(
        "AGENT_MODEL",
        "a model name",
        "Model of the openai agent provider (any OpenAI-compatible server).",
        _model,
        "gpt-4o-mini",
    ),
    Variable(
        "ELEVENLABS_VOICE_ID",
        "an ElevenLabs voice id",
        "ElevenLabs voice.",
        _model,
        "21m00Tcm4TlvDq8ikWAM",
    ),
    Variable(
        "ELEVENLABS_TTS_MODEL",
        "a model name",
        "ElevenLabs speech model.",
        _model,
        "eleven_flash_v2_5",
    ),
    Variable(
        "ELEVENLABS_STT_MODEL",
        "a model name",
        "ElevenLabs speech-to-text model.",
        _model,
        "scribe_v1",
    ),
    Variable(
        "ELEVENLABS_STABILITY",
        "a number from 0 to 1",
        "ElevenLabs voice stability.",
        _number(0.0, 1.0),
        "0.5",
    ),
    Variable(
        "ELEVENLABS_SIMILARITY_BOOST",
        "a number from 0 to 1",
        "ElevenLabs voice similarity boost.",
        _number(0.0, 1.0),
        "0.75",
    ),
    Variable(
        "GOOGLE_SPEECH_BASE_URL",
        "an http(s) URL",
        "Google Cloud Speech-to-Text base URL; override only for a test server.",
        _url("http", "https"),
        "https://speech.googleapis.com",
    ),
    Variable(
        "GOOGLE_TTS_BASE_URL",
        "an http(s) URL",
        "Google Cloud Text-to-Speech base URL; override only for a test server.",
        _url("http", "https"),
        "https://texttospeech.googleapis.com",
    ),
    Variable(
        "GOOGLE_TTS_VOICE", "a voice name", "Google Cloud TTS voice.", _model, "en-US-Neural2-F"
    ),
    Variable(
        "AZURE_STT_BASE_URL",
        "an http(s) URL",
        "Azure speech recognition base URL; default derived from AZURE_SPEECH_REGION.",
        _url("http", "https"),
    ),
    Variable(
        "AZURE_TTS_BASE_URL",
        "an http(s) URL",
        "Azure speech synthesis base URL; default derived from AZURE_SPEECH_REGION.",
        _url("http", "https"),
    ),
    Variable("AZURE_TTS_VOICE", "a voice name", "Azure TTS voice.", _model, "en-US-JennyNeural"),
    Variable(
        "LOCAL_STT_ENGINE",
        "one of whisper, pocketsphinx",
        "Offline recogniser: Whisper tiny.en (accurate) or pocketsphinx (light).",
        _choice(("whisper", "pocketsphinx")),
        "whisper",
    ),
    Variable(
        "LOCAL_TTS_ENGINE",
        "one of neural, espeak",
        "Offline voice: the packaged neural voice, or espeak-ng (always available).",
        _choice(("neural", "espeak")),
        "neural",
    ),
    Variable(
        "STT_TIMEOUT_SECONDS",
        "seconds, a number above 0 and at most 120",
        "Time allowed for one transcription attempt.",
        _number(0.0, 120.0, low_inclusive=False),
        "10",
    ),
    Variable(
        "TTS_FIRST_BYTE_TIMEOUT_SECONDS",
        "seconds, a number above 0 and at most 60",
        "Time allowed until a speech stream's first audio.",
        _number(0.0, 60.0, low_inclusive=False),
        "5",
    ),
    Variable(
        "AGENT_FIRST_TOKEN_TIMEOUT_SECONDS",
        "seconds, a number above 0 and at most 120",
        "Time allowed until the agent's first token.",
        _number(0.0, 120.0, low_inclusive=False),
        "8",
    ),
    Variable(
        "PROVIDER_ATTEMPTS",
        "a whole number from 1 to 5",
        "Attempts per provider (retries with backoff) before falling back to the next.",
        _integer(1, 5),
        "2",
    ),
    Variable(
        "PROVIDER_COOLDOWN_SECONDS",
        "seconds, a whole number from 0 to 3600",
        "How long a provider is skipped after it failed non-retryably (bad key), or failed "
        "4 attempts in a row while another provider of its kind is configured (an outage).",
        _integer(0, 3600),
        "60",
    ),
    Variable(
        "VOICE_CONNECT_TIMEOUT_SECONDS",
        "seconds, a number above 0 and at most 120",
        "Time allowed for one attempt to join a voice channel (3 attempts).",
        _number(0.0, 120.0, low_inclusive=False),
        "15",
    ),
    Variable(
        "VOICE_REJOIN_RETRY_SECONDS",
        "seconds, a number from 1 to 3600",
        "How long after losing a wanted voice channel for good (reconnects spent, rate "
        "limited, a rejoin that failed) the bot tries it again; the wait doubles after each "
        "failed try, up to 15 minutes.",
        _number(1.0, 3600.0),
        "60",
    ),
    Variable(
        "EMPTY_CHANNEL_GRACE_SECONDS",
        "seconds, a number from 0 to 3600",
        "How long the bot stays once no human is left in its channel.",
        _number(0.0, 3600.0),
        "30",
    ),
    Variable(
        "IDLE_TIMEOUT_SECONDS",
        "seconds, a number above 0 and at most 86400",
        "Leave a channel after this long without speech.",
        _number(0.0, 86400.0, low_inclusive=False),
        "300",
    ),
    Variable(
        "MAX_SESSIONS",
        "a whole number from 1 to 10000",
        "Voice channels one process serves at once.",
        _integer(1, 10000),
        "50",
    ),
    Variable(
        "DRAIN_SECONDS",
        "seconds, a number from 0 to 600",
        "On shutdown or demotion, how long a reply in progress may take to finish.",
        _number(0.0, 600.0),
        "10",
    ),
    Variable(
        "BUDGET_STT_SECONDS_PER_DAY",
        "seconds, a number from 0 to 10000000 (0 = no budget)",
        "Speech one guild may have transcribed per day (UTC); then replies are text only.",
        _number(0.0, 10_000_000.0),
        "0",
    ),
    Variable(
        "BUDGET_TTS_CHARACTERS_PER_DAY",
        "a whole number from 0 to 1000000000 (0 = no budget)",
        "Characters one guild may have spoken per day (UTC); then replies are text only.",
        _integer(0, 1_000_000_000),
        "0",
    ),
    Variable(
        "BUDGET_LLM_TOKENS_PER_DAY",
        "a whole number from 0 to 1000000000 (0 = no budget)",
        "Agent tokens one guild may use per day (UTC); then replies are text only.",
        _integer(0, 1_000_000_000),
        "0",
    ),
    Variable(
        "SHARD_COUNT",
        "a whole number from 1 to 10000",
        "Total Discord shards across all hosts; unset runs one unsharded client.",
        _integer(1, 10000),
    ),
    Variable(
        "SHARD_IDS",
        "comma-separated shard numbers below SHARD_COUNT",
        "The shards this host runs (with SHARD_COUNT).",
        _shard_ids,
    ),
    Variable(
        "SLOT_NAME",
        "a slot name of letters, digits, '-' or '_' (e.g. blue, green)",
        "This process's deployment slot, named in logs and in the active lock.",
        _agent_id,
        "main",
    ),
    Variable(
        "SLOT_ROLE",
        "active or standby",
        "Role at start. Only the slot holding the active lock answers Discord events.",
        _choice(("active", "standby")),
        "active",
    ),
    Variable(
        "OPS_ADMIN_TOKEN",
        "a bearer token",
        "Enables the loopback-only POST /admin/role (promote/demote); unset disables it.",
        _secret,
        secret=True,
    ),
    Variable(
        "LOG_LEVEL",
        f"one of {', '.join(LOG_LEVELS)}",
        "Log level. Defaults: debug (development), info (staging), warning (production).",
        _choice(LOG_LEVELS),
        {"development": "debug", "staging": "info", "production": "warning"},
    ),
    Variable(
        "SENTRY_DSN",
        "a Sentry DSN such as https://<key>@<host>/<project>",
        "Send errors to Sentry; unset disables Sentry.",
        _sentry_dsn,
        secret=True,
    ),
    Variable(
        "SENTRY_TRACES_SAMPLE_RATE",
        "a number from 0 to 1",
        "Share of traces sent to Sentry. Defaults: 1.0, production 0.1.",
        _number(0.0, 1.0),
        {"development": "1.0", "staging": "1.0", "production": "0.1"},
    ),
    Variable(
        "PROMETHEUS_ENABLED",
        "true or false",
        "Serve /metrics on the ops port.",
        _boolean,
        "true",
    ),
    Variable(
        "HEALTH_CHECK_INTERVAL",
        "seconds, a number above 0 and at most 3600",
        "How often the event-loop monitor ticks; /health fails when a tick is late by more "
        "than twice this (at least 1 s).",
        _number(0.0, 3600.0, low_inclusive=False),
        "5",
    ),
    Variable(
        "OPS_HOST",
        "an IP address or host name",
        "Address of the ops HTTP server (/health, /ready, /metrics, /status).",
        _host,
        "127.0.0.1",
    ),
    Variable(
        "OPS_PORT",
        "a TCP port from 0 to 65535 (0 picks a free one)",
        "Port of the ops HTTP server.",
        _integer(0, 65535),
        "8080",
    ),
    Variable(
        "STATE_DIR",
        "a directory path",
        "Where the SQLite state lives (shared by both deployment slots).",
        _directory,
        {
            "development": ".openclaw-voice",
            "staging": "/var/lib/openclaw-voice",
            "production": "/var/lib/openclaw-voice",
        },
    ),
    Variable(
        "RATE_LIMIT_USER_PER_MINUTE",
        "a whole number from 0 to 10000 (0 = no limit)",
        "Slash commands one user may run per minute. Defaults: 0, staging 20, production 6.",
        _integer(0, 10000),
        {"development": "0", "staging": "20", "production": "6"},
    ),
    Variable(
        "RATE_LIMIT_GUILD_PER_MINUTE",
        "a whole number from 0 to 100000 (0 = no limit)",
        "Slash commands one guild may run per minute. Defaults: 0, staging 120, production 30.",
        _integer(0, 100000),
        {"development": "0", "staging": "120", "production": "30"},
    ),
)

VARIABLES_BY_NAME: Final = {variable.name: variable for variable in VARIABLES}
SECRET_VARIABLES: Final = tuple(v.name for v in VARIABLES if v.secret)


@dataclass(frozen=True)
class SpeechSettings:
    """Provider knobs: models, voices, endpoints and time budgets of STT, TTS and agent."""

    wake_name: str
    stt_language: str
    openai_stt_model: str
    openai_tts_model: str
    openai_tts_voice: str
    agent_model: str
    elevenlabs_voice_id: str
    elevenlabs_tts_model: str
    elevenlabs_stt_model: str
    elevenlabs_stability: float
    elevenlabs_similarity_boost: float
    google_speech_base_url: str
    google_tts_base_url: str
    google_tts_voice: str
    azure_stt_base_url: str | None
    azure_tts_base_url: str | None
    azure_tts_voice: str
    local_stt_engine: str
    local_tts_engine: str
    stt_timeout_seconds: float
    tts_first_byte_timeout_seconds: float
    agent_first_token_timeout_seconds: float
    provider_attempts: int
    provider_cooldown_seconds: int


@dataclass(frozen=True)
class SessionSettings:
    """Voice session lifecycle and sharding."""

    voice_connect_timeout_seconds: float
    voice_rejoin_retry_seconds: float
    empty_channel_grace_seconds: float
    idle_timeout_seconds: float
    max_sessions: int
    drain_seconds: float
    budget_stt_seconds_per_day: float
    budget_tts_characters_per_day: int
    budget_llm_tokens_per_day: int
    shard_count: int | None
    shard_ids: tuple[int, ...] | None


@dataclass(frozen=True)
class Settings:
    """The validated configuration; built by :func:`load_settings`, never from globals."""

    app_env: Environment
    discord_token: Secret | None
    discord_client_id: int | None
    discord_guild_id: int | None
    discord_endpoints: DiscordEndpoints
    stt_provider: tuple[str, ...]
    tts_provider: tuple[str, ...]
    agent_provider: tuple[str, ...]
    provider_keys: Mapping[str, Secret] = field(repr=False)
    azure_speech_region: str | None
    openclaw_gateway_url: str | None
    openclaw_gateway_token: Secret | None
    openclaw_agent_id: str
    openai_base_url: str
    elevenlabs_base_url: str
    log_level: str
    sentry_dsn: Secret | None
    sentry_traces_sample_rate: float
    prometheus_enabled: bool
    health_check_interval: float
    ops_host: str
    ops_port: int
    state_dir: Path
    rate_limit_user_per_minute: int
    rate_limit_guild_per_minute: int
    speech: SpeechSettings
    sessions: SessionSettings
    slot_name: str
    slot_role: Literal["active", "standby"]
    ops_admin_token: Secret | None
    config_file: Path | None = None

    def secret_values(self) -> list[str]:
        """Every configured credential, for the log and Sentry redaction."""
        secrets = [
            self.discord_token,
            self.openclaw_gateway_token,
            self.sentry_dsn,
            self.ops_admin_token,
        ]
        secrets.extend(self.provider_keys.values())
        return [secret.reveal() for secret in secrets if secret is not None]

    def key_for(self, kind: Literal["stt", "tts"], provider: str) -> Secret | None:
        """The key a provider uses: STT_/TTS_API_KEY for the chain's first, else its own."""
        if provider not in PROVIDER_KEY_VARIABLES:
            return None  # local and other keyless providers
        chain = self.stt_provider if kind == "stt" else self.tts_provider
        first = chain[0] if chain else None
        if provider == first and f"{kind.upper()}_API_KEY" in self.provider_keys:
            return self.provider_keys[f"{kind.upper()}_API_KEY"]
        variable = PROVIDER_KEY_VARIABLES.get(provider)
        return self.provider_keys.get(variable) if variable else None


# --- loading ------------------------------------------------------------------------------


def read_config_file(path: Path) -> dict[str, str]:
    """Variables from a TOML file: top-level ``NAME = value`` pairs (names case-insensitive).

    Raises ConfigError naming the file when it cannot be read or parsed, holds unknown
    names, or holds secrets while readable by anyone but its owner.
    """
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        mode = path.stat().st_mode
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            [f"{CONFIG_FILE_VARIABLE}: expected a readable TOML file, found {path} ({reason})"]
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            [f"{CONFIG_FILE_VARIABLE}: expected valid TOML in {path}, found: {error}"]
        ) from None
    problems: list[str] = []
    values: dict[str, str] = {}
    for key, value in document.items():
        name = key.upper()
        if name not in VARIABLES_BY_NAME:
            problems.append(f"{path}: unknown setting {key!r}")
        elif isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[name] = str(value)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            values[name] = ",".join(cast("list[str]", value))
        else:
            problems.append(f"{name}: expected a string or number in {path}, found {value!r}")
    if any(VARIABLES_BY_NAME[name].secret for name in values) and mode & (
        stat.S_IRWXG | stat.S_IRWXO
    ):
        problems.append(
            f"{CONFIG_FILE_VARIABLE}: {path} holds secrets, expected mode 0600 or stricter, "
            f"found {stat.S_IMODE(mode):04o}"
        )
    if problems:
        raise ConfigError(problems)
    return values


def _found(variable: Variable, raw: str) -> str:
    if variable.secret:
        return f"a value of {len(raw)} characters" if raw.strip() else "an empty value"
    return repr(raw)


def _parse_all(raw: Mapping[str, str], environment: str) -> tuple[dict[str, object], list[str]]:
    values: dict[str, object] = {}
    problems: list[str] = []
    for variable in VARIABLES:
        text = raw.get(variable.name, variable.default_for(environment))
        if text is None:
            values[variable.name] = None
            continue
        try:
            values[variable.name] = variable.parse(text)
        except _Invalid:
            values[variable.name] = None
            problems.append(
                f"{variable.name}: expected {variable.expected}, found {_found(variable, text)}"
            )
    return values, problems


def _requirements(
    values: Mapping[str, object], given: Collection[str], environment: str, *, offline: bool
) -> list[str]:
    """What the chosen environment and providers need but is not set.

    A variable that is set but malformed has been reported already, so it is not "missing".
    """
    problems: list[str] = []

    def missing(name: str, why: str) -> None:
        if values.get(name) is None and name not in given:
            problems.append(
                f"{name}: expected {VARIABLES_BY_NAME[name].expected} ({why}), "
                "found nothing (not set)"
            )

    if not offline:
        missing("DISCORD_TOKEN", "required to run")
    for kind in ("STT", "TTS"):
        chain = cast("tuple[str, ...] | None", values.get(f"{kind}_PROVIDER"))
        if chain is None:
            missing(f"{kind}_PROVIDER", f"required in {environment}")
            continue
        for index, provider in enumerate(chain):
            key_variable = PROVIDER_KEY_VARIABLES.get(provider)
            if key_variable is None:
                continue
            candidates = [key_variable, f"{kind}_API_KEY"] if index == 0 else [key_variable]
            has_key = any(values.get(name) is not None or name in given for name in candidates)
            if not has_key:
                alternatives = f"{kind}_API_KEY or {key_variable}" if index == 0 else key_variable
                problems.append(
                    f"{key_variable}: expected an API key ({kind}_PROVIDER uses {provider}; "
                    f"set {alternatives}), found nothing (not set)"
                )
            if provider == "azure":
                missing("AZURE_SPEECH_REGION", f"{kind}_PROVIDER uses azure")
    problems.extend(_shard_problems(values))
    agents = cast("tuple[str, ...] | None", values.get("AGENT_PROVIDER"))
    if agents is None:
        missing("AGENT_PROVIDER", f"required in {environment}")
    else:
        if "openclaw" in agents:
            missing("OPENCLAW_GATEWAY_URL", "AGENT_PROVIDER uses openclaw")
            missing("OPENCLAW_GATEWAY_TOKEN", "AGENT_PROVIDER uses openclaw")
        if "openai" in agents:
            missing("OPENAI_API_KEY", "AGENT_PROVIDER uses openai")
    return problems


def _fields_of(group: type, values: Mapping[str, object]) -> dict[str, Any]:
    """A settings group's fields by name: each is the lower-case name of its variable."""
    return {field.name: values[field.name.upper()] for field in dataclasses.fields(group)}


def _shard_problems(values: Mapping[str, object]) -> list[str]:
    shard_count = cast("int | None", values.get("SHARD_COUNT"))
    shard_ids = cast("tuple[int, ...] | None", values.get("SHARD_IDS"))
    if shard_ids is None:
        return []
    if shard_count is None:
        return [
            f"SHARD_COUNT: expected {VARIABLES_BY_NAME['SHARD_COUNT'].expected} "
            "(SHARD_IDS is set), found nothing (not set)"
        ]
    if max(shard_ids) >= shard_count:
        return [
            f"SHARD_IDS: expected shard numbers below SHARD_COUNT ({shard_count}), "
            f"found {','.join(map(str, shard_ids))}"
        ]
    return []


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    offline: bool = False,
) -> Settings:
    """Build the settings; environment variables win over the file's values.

    ``offline`` loads the embedded offline default: no Discord token needed and every
    provider forced to ``local``. Raises ConfigError with every problem found.
    """
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    raw: dict[str, str] = {}
    file_name = env.get(CONFIG_FILE_VARIABLE)
    if config_file is None and file_name:
        config_file = Path(file_name)
    if config_file is not None:
        try:
            raw.update(read_config_file(config_file))
        except ConfigError as error:
            problems.extend(error.problems)
    raw.update({name: env[name] for name in VARIABLES_BY_NAME if name in env})
    if offline:
        raw.update({"STT_PROVIDER": "local", "TTS_PROVIDER": "local", "AGENT_PROVIDER": "local"})

    try:
        environment = _choice(ENVIRONMENTS)(raw.get("APP_ENV", "development"))
    except _Invalid:
        environment = "development"
    values, parse_problems = _parse_all(raw, environment)
    problems.extend(parse_problems)
    problems.extend(_requirements(values, raw.keys(), environment, offline=offline))
    if problems:
        raise ConfigError(problems)

    def get(name: str) -> object:
        return values[name]

    provider_keys = {
        name: cast("Secret", get(name))
        for name in ("STT_API_KEY", "TTS_API_KEY", *PROVIDER_KEY_VARIABLES.values())
        if get(name) is not None
    }
    return Settings(
        app_env=cast("Environment", environment),
        discord_token=cast("Secret | None", get("DISCORD_TOKEN")),
        discord_client_id=cast("int | None", get("DISCORD_CLIENT_ID")),
        discord_guild_id=cast("int | None", get("DISCORD_GUILD_ID")),
        discord_endpoints=DiscordEndpoints(
            api_base=cast("str", get("DISCORD_API_BASE")),
            gateway_url=cast("str", get("DISCORD_GATEWAY_URL")),
            ca_bundle=cast("Path | None", get("DISCORD_CA_BUNDLE")),
        ),
        stt_provider=cast("tuple[str, ...]", get("STT_PROVIDER")),
        tts_provider=cast("tuple[str, ...]", get("TTS_PROVIDER")),
        agent_provider=cast("tuple[str, ...]", get("AGENT_PROVIDER")),
        provider_keys=provider_keys,
        azure_speech_region=cast("str | None", get("AZURE_SPEECH_REGION")),
        openclaw_gateway_url=cast("str | None", get("OPENCLAW_GATEWAY_URL")),
        openclaw_gateway_token=cast("Secret | None", get("OPENCLAW_GATEWAY_TOKEN")),
        openclaw_agent_id=cast("str", get("OPENCLAW_AGENT_ID")),
        openai_base_url=cast("str", get("OPENAI_BASE_URL")),
        elevenlabs_base_url=cast("str", get("ELEVENLABS_BASE_URL")),
        log_level=cast("str", get("LOG_LEVEL")),
        sentry_dsn=cast("Secret | None", get("SENTRY_DSN")),
        sentry_traces_sample_rate=cast("float", get("SENTRY_TRACES_SAMPLE_RATE")),
        prometheus_enabled=cast("bool", get("PROMETHEUS_ENABLED")),
        health_check_interval=cast("float", get("HEALTH_CHECK_INTERVAL")),
        ops_host=cast("str", get("OPS_HOST")),
        ops_port=cast("int", get("OPS_PORT")),
        state_dir=cast("Path", get("STATE_DIR")),
        rate_limit_user_per_minute=cast("int", get("RATE_LIMIT_USER_PER_MINUTE")),
        rate_limit_guild_per_minute=cast("int", get("RATE_LIMIT_GUILD_PER_MINUTE")),
        speech=SpeechSettings(**_fields_of(SpeechSettings, values)),
        sessions=SessionSettings(**_fields_of(SessionSettings, values)),
        slot_name=cast("str", get("SLOT_NAME")),
        slot_role=cast("Literal['active', 'standby']", get("SLOT_ROLE")),
        ops_admin_token=cast("Secret | None", get("OPS_ADMIN_TOKEN")),
        config_file=config_file,
    )
