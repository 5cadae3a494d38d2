"""Configuration loading: every variable's validation, defaults per environment, the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openclaw_voice.config import (
    SECRET_VARIABLES,
    VARIABLES,
    ConfigError,
    Settings,
    load_settings,
)

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123"
BASE = {"DISCORD_TOKEN": TOKEN}


def problems_for(environ: dict[str, str], **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_development_defaults_need_only_the_token() -> None:
    settings = load_settings(BASE)
    assert settings.app_env == "development"
    assert settings.stt_provider == ("local",)
    assert settings.tts_provider == ("local",)
    assert settings.agent_provider == ("local",)
    assert settings.log_level == "debug"
    assert settings.rate_limit_user_per_minute == 0
    assert settings.ops_host == "127.0.0.1"
    assert settings.ops_port == 8080
    assert settings.prometheus_enabled is True
    assert settings.sentry_dsn is None
    assert settings.discord_endpoints.is_default
    assert settings.openclaw_agent_id == "main"
    assert settings.speech.wake_name == "OpenClaw"
    assert settings.speech.elevenlabs_stability == 0.5
    assert settings.speech.elevenlabs_similarity_boost == 0.75
    assert settings.speech.stt_timeout_seconds == 10
    assert settings.speech.tts_first_byte_timeout_seconds == 5
    assert settings.speech.agent_first_token_timeout_seconds == 8
    assert settings.speech.azure_stt_base_url is None


def test_no_environment_reports_the_missing_token_only() -> None:
    assert problems_for({}) == [
        "DISCORD_TOKEN: expected the bot token from the Discord developer portal "
        "(required to run), found nothing (not set)"
    ]


@pytest.mark.parametrize(
    ("environment", "log_level", "user_limit", "guild_limit", "traces"),
    [
        ("staging", "info", 20, 120, 1.0),
        ("production", "warning", 6, 30, 0.1),
    ],
)
def test_per_environment_defaults(
    environment: str, log_level: str, user_limit: int, guild_limit: int, traces: float
) -> None:
    settings = load_settings(
        {
            **BASE,
            "APP_ENV": environment,
            "STT_PROVIDER": "local",
            "TTS_PROVIDER": "local",
            "AGENT_PROVIDER": "local",
        }
    )
    assert settings.log_level == log_level
    assert settings.rate_limit_user_per_minute == user_limit
    assert settings.rate_limit_guild_per_minute == guild_limit
    assert settings.sentry_traces_sample_rate == traces
    assert settings.state_dir == Path("/var/lib/openclaw-voice")


def test_production_requires_explicit_providers_all_reported_at_once() -> None:
    problems = problems_for({**BASE, "APP_ENV": "production"})
    assert [problem.split(":")[0] for problem in problems] == [
        "STT_PROVIDER",
        "TTS_PROVIDER",
        "AGENT_PROVIDER",
    ]
    assert all("required in production" in problem for problem in problems)


# Each malformed value, the variable named and the expectation stated.
MALFORMED = [
    ("APP_ENV", "prod", "one of development, staging, production"),
    ("DISCORD_TOKEN", "  ", "the bot token"),
    ("DISCORD_TOKEN", "two words", "the bot token"),
    ("DISCORD_CLIENT_ID", "abc", "numeric snowflake"),
    ("DISCORD_GUILD_ID", "12", "numeric snowflake"),
    ("DISCORD_API_BASE", "discord.com/api", "an http(s) URL"),
    ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg", "a ws(s) URL"),
    ("DISCORD_CA_BUNDLE", "/nonexistent/ca.pem", "a readable PEM file"),
    ("STT_PROVIDER", "whisper", "comma-separated fallback chain"),
    ("STT_PROVIDER", "local,local", "no repeats"),
    ("TTS_PROVIDER", "local,", "comma-separated fallback chain"),
    ("AGENT_PROVIDER", "gpt", "openclaw, openai, local"),
    ("AZURE_SPEECH_REGION", "west europe", "an Azure region"),
    ("OPENCLAW_GATEWAY_URL", "localhost:18789", "an http(s) URL"),
    ("OPENCLAW_AGENT_ID", "a/b", "an agent id"),
    ("OPENAI_BASE_URL", "ftp://x", "an http(s) URL"),
    ("ELEVENLABS_BASE_URL", "", "an http(s) URL"),
    ("LOG_LEVEL", "verbose", "one of debug, info, warning, error, critical"),
    ("SENTRY_DSN", "not-a-dsn", "a Sentry DSN"),
    ("SENTRY_TRACES_SAMPLE_RATE", "1.5", "a number from 0 to 1"),
    ("SENTRY_TRACES_SAMPLE_RATE", "half", "a number from 0 to 1"),
    ("PROMETHEUS_ENABLED", "maybe", "true or false"),
    ("HEALTH_CHECK_INTERVAL", "0", "above 0"),
    ("HEALTH_CHECK_INTERVAL", "soon", "above 0"),
    ("OPS_HOST", "not a host!", "an IP address or host name"),
    ("OPS_PORT", "http", "a TCP port"),
    ("OPS_PORT", "70000", "a TCP port"),
    ("STATE_DIR", " ", "a directory path"),
    ("RATE_LIMIT_USER_PER_MINUTE", "-1", "a whole number"),
    ("RATE_LIMIT_GUILD_PER_MINUTE", "many", "a whole number"),
    ("STT_API_KEY", "", "an API key"),
    ("TTS_API_KEY", "a b", "an API key"),
    ("OPENAI_API_KEY", " ", "an API key"),
    ("ELEVENLABS_API_KEY", "", "an API key"),
    ("GOOGLE_API_KEY", "", "an API key"),
    ("AZURE_SPEECH_KEY", "", "an API key"),
    ("OPENCLAW_GATEWAY_TOKEN", "", "the gateway's bearer token"),
    ("WAKE_NAME", "x", "a name of 2 to 32"),
    ("STT_LANGUAGE", "english", "ISO 639-1"),
    ("OPENAI_STT_MODEL", "bad model", "a model name"),
    ("OPENAI_TTS_MODEL", "", "a model name"),
    ("OPENAI_TTS_VOICE", "a b", "a voice name"),
    ("AGENT_MODEL", "?", "a model name"),
    ("ELEVENLABS_VOICE_ID", "id with space", "an ElevenLabs voice id"),
    ("ELEVENLABS_TTS_MODEL", " ", "a model name"),
    ("ELEVENLABS_STT_MODEL", "x y", "a model name"),
    ("ELEVENLABS_STABILITY", "2", "a number from 0 to 1"),
    ("ELEVENLABS_SIMILARITY_BOOST", "-0.1", "a number from 0 to 1"),
    ("GOOGLE_SPEECH_BASE_URL", "speech", "an http(s) URL"),
    ("GOOGLE_TTS_BASE_URL", "ws://x", "an http(s) URL"),
    ("GOOGLE_TTS_VOICE", "", "a voice name"),
    ("AZURE_STT_BASE_URL", "region", "an http(s) URL"),
    ("AZURE_TTS_BASE_URL", "", "an http(s) URL"),
    ("AZURE_TTS_VOICE", "a voice", "a voice name"),
    ("LOCAL_STT_ENGINE", "vosk", "one of whisper, pocketsphinx"),
    ("LOCAL_TTS_ENGINE", "piper", "one of neural, espeak"),
    ("STT_TIMEOUT_SECONDS", "0", "at most 120"),
    ("TTS_FIRST_BYTE_TIMEOUT_SECONDS", "61", "at most 60"),
    ("AGENT_FIRST_TOKEN_TIMEOUT_SECONDS", "-1", "at most 120"),
    ("PROVIDER_ATTEMPTS", "0", "from 1 to 5"),
    ("PROVIDER_COOLDOWN_SECONDS", "1.5", "from 0 to 3600"),
    ("VOICE_CONNECT_TIMEOUT_SECONDS", "0", "above 0"),
    ("VOICE_REJOIN_RETRY_SECONDS", "0.5", "from 1 to 3600"),
    ("EMPTY_CHANNEL_GRACE_SECONDS", "-5", "from 0 to 3600"),
    ("IDLE_TIMEOUT_SECONDS", "forever", "above 0"),
    ("MAX_SESSIONS", "0", "from 1 to 10000"),
    ("SHARD_COUNT", "0", "from 1 to 10000"),
    ("SHARD_IDS", "1,1", "comma-separated shard numbers"),
    ("DRAIN_SECONDS", "601", "from 0 to 600"),
    ("BUDGET_STT_SECONDS_PER_DAY", "-1", "0 = no budget"),
    ("BUDGET_TTS_CHARACTERS_PER_DAY", "lots", "0 = no budget"),
    ("BUDGET_LLM_TOKENS_PER_DAY", "1.5", "0 = no budget"),
    ("SLOT_NAME", "blue green", "a slot name"),
    ("SLOT_ROLE", "primary", "active or standby"),
    ("OPS_ADMIN_TOKEN", " ", "a bearer token"),
]


@pytest.mark.parametrize(("name", "value", "expected"), MALFORMED)
def test_malformed_value_names_variable_expectation_and_value(
    name: str, value: str, expected: str
) -> None:
    problems = problems_for({**BASE, name: value})
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.startswith(f"{name}: expected ")
    assert expected in problem
    if name in SECRET_VARIABLES:
        assert value.strip() == "" or value not in problem
        assert "characters" in problem or "empty" in problem
    else:
        assert f"found {value!r}" in problem


def test_every_variable_has_a_malformed_case() -> None:
    without_invalid_form: set[str] = set()  # every variable has a value it rejects
    covered = {name for name, _, _ in MALFORMED}
    assert {variable.name for variable in VARIABLES} - covered == without_invalid_form


def test_all_problems_reported_together() -> None:
    problems = problems_for({"OPS_PORT": "x", "LOG_LEVEL": "loud", "STT_PROVIDER": "nope"})
    assert {problem.split(":")[0] for problem in problems} == {
        "OPS_PORT",
        "LOG_LEVEL",
        "STT_PROVIDER",
        "DISCORD_TOKEN",
    }


def test_secret_value_never_echoed() -> None:
    secret = "sk-live-this-must-not-appear"
    problems = problems_for({**BASE, "SENTRY_DSN": secret})
    assert secret not in " ".join(problems)
    assert "a value of 28 characters" in problems[0]


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"STT_PROVIDER": "openai"}, "STT_API_KEY or OPENAI_API_KEY"),
        ({"TTS_PROVIDER": "elevenlabs"}, "TTS_API_KEY or ELEVENLABS_API_KEY"),
        ({"STT_PROVIDER": "local,google"}, "GOOGLE_API_KEY"),
        ({"STT_PROVIDER": "azure", "STT_API_KEY": "k" * 32}, "AZURE_SPEECH_REGION"),
        ({"AGENT_PROVIDER": "openclaw"}, "OPENCLAW_GATEWAY_URL"),
        ({"AGENT_PROVIDER": "openai"}, "OPENAI_API_KEY"),
    ],
)
def test_provider_needs_its_credentials(environ: dict[str, str], missing: str) -> None:
    problems = problems_for({**BASE, **environ})
    assert any(missing in problem for problem in problems), problems


def test_first_provider_uses_chain_key_others_their_own() -> None:
    settings = load_settings(
        {
            **BASE,
            "STT_PROVIDER": "openai,elevenlabs",
            "STT_API_KEY": "stt-key-0123456789",
            "ELEVENLABS_API_KEY": "eleven-key-0123456789",
        }
    )
    first = settings.key_for("stt", "openai")
    second = settings.key_for("stt", "elevenlabs")
    assert first is not None
    assert first.reveal() == "stt-key-0123456789"
    assert second is not None
    assert second.reveal() == "eleven-key-0123456789"
    assert settings.key_for("tts", "local") is None


def test_shards() -> None:
    settings = load_settings({**BASE, "SHARD_COUNT": "4", "SHARD_IDS": "2,3"})
    assert settings.sessions.shard_ids == (2, 3)
    assert settings.sessions.shard_count == 4
    assert any("SHARD_COUNT" in p for p in problems_for({**BASE, "SHARD_IDS": "0"}))
    problems = problems_for({**BASE, "SHARD_COUNT": "2", "SHARD_IDS": "0,2"})
    assert problems == ["SHARD_IDS: expected shard numbers below SHARD_COUNT (2), found 0,2"]


def test_openclaw_agent_settings() -> None:
    settings = load_settings(
        {
            **BASE,
            "AGENT_PROVIDER": "openclaw,local",
            "OPENCLAW_GATEWAY_URL": "http://127.0.0.1:18789",
            "OPENCLAW_GATEWAY_TOKEN": "gateway-token-123456",
            "OPENCLAW_AGENT_ID": "voice",
        }
    )
    assert settings.agent_provider == ("openclaw", "local")
    assert settings.openclaw_gateway_url == "http://127.0.0.1:18789"
    assert settings.openclaw_agent_id == "voice"
    assert "gateway-token-123456" in settings.secret_values()


def test_offline_needs_no_token_and_forces_local() -> None:
    settings = load_settings({"STT_PROVIDER": "openai"}, offline=True)
    assert settings.discord_token is None
    assert settings.stt_provider == ("local",)


def test_endpoint_overrides(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(
        {
            **BASE,
            "DISCORD_API_BASE": "http://127.0.0.1:5000/api/v10",
            "DISCORD_GATEWAY_URL": "ws://127.0.0.1:5001/",
            "DISCORD_CA_BUNDLE": str(bundle),
        }
    )
    assert settings.discord_endpoints.api_base == "http://127.0.0.1:5000/api/v10"
    assert settings.discord_endpoints.gateway_url == "ws://127.0.0.1:5001/"
    assert settings.discord_endpoints.ca_bundle == bundle
    assert not settings.discord_endpoints.is_default


def test_settings_repr_masks_every_secret() -> None:
    values = {
        **BASE,
        "STT_PROVIDER": "openai",
        "STT_API_KEY": "stt-secret-value-1",
        "OPENCLAW_GATEWAY_TOKEN": "gateway-secret-value-2",
        "SENTRY_DSN": "https://publickey99@sentry.example/42",
    }
    settings = load_settings(values)
    text = repr(settings) + str(settings)
    for secret in (TOKEN, "stt-secret-value-1", "gateway-secret-value-2", "publickey99"):
        assert secret not in text
    assert sorted(settings.secret_values()) == sorted(
        [TOKEN, "stt-secret-value-1", "gateway-secret-value-2", values["SENTRY_DSN"]]
    )


# --- the config file ------------------------------------------------------------------


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_config_file_values_and_environment_precedence(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "voice.toml",
        'discord_token = "file-token-value-123"\nOPS_PORT = 9000\n'
        'PROMETHEUS_ENABLED = false\nSTT_PROVIDER = ["local"]\nLOG_LEVEL = "info"\n',
    )
    settings = load_settings({"LOG_LEVEL": "error"}, config_file=path)
    assert settings.discord_token is not None
    assert settings.discord_token.reveal() == "file-token-value-123"
    assert settings.ops_port == 9000
    assert settings.prometheus_enabled is False
    assert settings.log_level == "error"
    assert settings.config_file == path


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path / "voice.toml", "OPS_PORT = 9100\n", mode=0o644)
    settings = load_settings({**BASE, "OPENCLAW_VOICE_CONFIG": str(path)})
    assert settings.ops_port == 9100


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("OPS_PORT = ", 0o600, "expected valid TOML"),
        ("COLOUR = 'blue'\n", 0o600, "unknown setting 'COLOUR'"),
        ("OPS_PORT = {a = 1}\n", 0o600, "expected a string or number"),
        ('DISCORD_TOKEN = "file-token-value-123"\n', 0o644, "expected mode 0600"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, mode: int, expected: str) -> None:
    path = write_config(tmp_path / "voice.toml", text, mode)
    problems = problems_for(BASE, config_file=path)
    assert any(expected in problem for problem in problems), problems
    assert "file-token-value-123" not in " ".join(problems)


def test_unreadable_config_file_reported_with_other_problems(tmp_path: Path) -> None:
    problems = problems_for({"OPS_PORT": "x"}, config_file=tmp_path / "missing.toml")
    assert problems[0].startswith("OPENCLAW_VOICE_CONFIG: expected a readable TOML file")
    assert any(problem.startswith("OPS_PORT:") for problem in problems)


def test_settings_are_immutable() -> None:
    settings = load_settings(BASE)
    assert isinstance(settings, Settings)
    with pytest.raises(AttributeError):
        settings.ops_port = 1  # type: ignore[misc]
