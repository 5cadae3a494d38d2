"""The real CLI as a user runs it: check, migrate, --version, bad input."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from openclaw_voice import __version__
from openclaw_voice.store.migrate import bundled_migrations
from tests.cli import run_cli


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"openclaw-voice {__version__}"


def test_check_without_environment_names_the_missing_token() -> None:
    result = run_cli("check")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "config error: DISCORD_TOKEN: expected the bot token from the Discord developer "
        "portal (required to run), found nothing (not set)"
    ]


def test_check_reports_every_problem_one_line_each_without_traceback() -> None:
    result = run_cli(
        "check",
        env={
            "APP_ENV": "production",
            "OPS_PORT": "eighty",
            "LOG_LEVEL": "loud",
            "STT_PROVIDER": "whisper",
            "DISCORD_TOKEN": "",
        },
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    named = [line.removeprefix("config error: ").split(":")[0] for line in lines]
    assert sorted(named) == sorted(
        ["DISCORD_TOKEN", "STT_PROVIDER", "TTS_PROVIDER", "AGENT_PROVIDER", "LOG_LEVEL", "OPS_PORT"]
    )
    assert "Traceback" not in result.output


def test_check_valid_configuration_prints_summary(tmp_path: Path) -> None:
    result = run_cli(
        "check",
        env={"DISCORD_TOKEN": "token-value-for-check-0123", "STATE_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.output
    assert "environment: development" in result.stdout
    assert "speech-to-text: local" in result.stdout
    assert result.stdout.rstrip().endswith("configuration OK")
    assert "token-value-for-check-0123" not in result.output


def test_check_offline_default_loads_the_offline_stack() -> None:
    result = run_cli("check", "--offline")
    assert result.returncode == 0, result.output
    for part in (
        "libopus",
        "davey",
        "soxr",
        "silero VAD",
        "espeak-ng",
        "offline speech-to-text",
        "offline voice",
    ):
        assert any(line.startswith("ok") and part in line for line in result.stdout.splitlines())
    assert "configuration OK" in result.stdout


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "absent.toml"), "check", "--offline")
    assert result.returncode == 2
    assert "OPENCLAW_VOICE_CONFIG: expected a readable TOML file" in result.stderr
    assert "Traceback" not in result.output


def test_migrate_creates_private_database_and_is_idempotent(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": "token-value-for-migrate-0123", "STATE_DIR": str(tmp_path / "s")}
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.output
    assert "applied 0001_initial.sql" in first.stdout
    database = tmp_path / "s" / "state.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(bundled_migrations()),)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "guild_voice_state" in tables
    second = run_cli("migrate", env=env)
    assert second.returncode == 0
    assert "up to date" in second.stdout


def test_migrate_into_unwritable_place_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli(
        "migrate", env={"DISCORD_TOKEN": "token-value-0123456", "STATE_DIR": str(blocker / "s")}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("migrate: cannot create")
    assert "Traceback" not in result.output
