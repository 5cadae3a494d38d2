"""Command line: ``openclaw-voice run | check | migrate | demo | probe``.

Configuration problems print one line each on stderr and exit 2; no command shows a
traceback for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from openclaw_voice import __version__

if TYPE_CHECKING:
    from openclaw_voice.config import Settings

# Exit codes of every command (the bot's imports are deferred so that `probe` starts fast).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2  # a configuration problem, or a token Discord rejects: systemd must not loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openclaw-voice",
        description="Discord voice assistant for the OpenClaw agent.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file of settings (same names as the environment variables, which win)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the bot and its ops HTTP server")
    check = commands.add_parser("check", help="validate the configuration")
    mode = check.add_mutually_exclusive_group()
    mode.add_argument(
        "--online",
        action="store_true",
        help="also verify the Discord token and provider credentials over the network",
    )
    mode.add_argument(
        "--offline",
        action="store_true",
        help="check the embedded offline default (local providers, no Discord token)",
    )
    commands.add_parser("migrate", help="create or upgrade the SQLite state database")
    demo = commands.add_parser(
        "demo",
        help="talk to the bot offline: speech in (WAV files or --say), spoken replies out",
    )
    demo.add_argument("wavs", nargs="*", type=Path, metavar="WAV", help="recordings of you")
    demo.add_argument(
        "--say", action="append", default=[], metavar="TEXT", help="text spoken by the local voice"
    )
    demo.add_argument(
        "--out", type=Path, default=Path(), metavar="DIR", help="where reply WAVs go (default: .)"
    )
    probe = commands.add_parser(
        "probe",
        help="probe an ops API (a slot or HAProxy) once or for a watch window; see probe --help",
        add_help=False,
    )
    probe.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def _load(config: Path | None, *, offline: bool = False) -> Settings | None:
    from openclaw_voice.config import ConfigError, load_settings

    try:
        return load_settings(config_file=config, offline=offline)
    except ConfigError as error:
        for problem in error.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return None


def _configure_observability(settings: Settings) -> None:
    from openclaw_voice.app import SERVICE_NAME
    from openclaw_voice.ops.logging import configure_logging
    from openclaw_voice.ops.redaction import Redactor
    from openclaw_voice.ops.sentry import init_sentry

    redactor = Redactor(settings.secret_values())
    configure_logging(
        level=settings.log_level,
        service=SERVICE_NAME,
        environment=settings.app_env,
        redactor=redactor,
    )
    if settings.sentry_dsn is not None:
        init_sentry(
            dsn=settings.sentry_dsn.reveal(),
            environment=settings.app_env,
            release=f"{SERVICE_NAME}@{__version__}",
            traces_sample_rate=settings.sentry_traces_sample_rate,
            redactor=redactor,
        )


def _run(settings: Settings) -> int:
    from openclaw_voice.app import Application
    from openclaw_voice.ops.sentry import flush

    async def main() -> int:
        return await Application(settings).run()

    try:
        return asyncio.run(main())
    finally:
        flush(5.0)


def _check(settings: Settings, *, online: bool, offline: bool) -> int:
    from openclaw_voice.checks import (
        local_model_checks,
        offline_stack_checks,
        online_checks,
        summary_lines,
    )

    for line in summary_lines(settings):
        print(line)
    results = []
    if offline:
        results = offline_stack_checks() + asyncio.run(local_model_checks(settings))
    elif online:
        results = asyncio.run(online_checks(settings))
    for result in results:
        print(result.line())
    if any(not result.ok for result in results):
        return EXIT_FAILURE
    print("configuration OK")
    return EXIT_OK


def _migrate(settings: Settings) -> int:
    from openclaw_voice.store.migrate import MigrationError, database_path, migrate

    try:
        applied = asyncio.run(migrate(settings.state_dir))
    except MigrationError as error:
        print(f"migrate: {error}", file=sys.stderr)
        return EXIT_FAILURE
    path = database_path(settings.state_dir)
    if applied:
        print(f"{path}: applied {', '.join(applied)}")
    else:
        print(f"{path}: up to date")
    return EXIT_OK


def _demo(settings: Settings, wavs: list[Path], say: list[str], out: Path) -> int:
    from openclaw_voice.app import build_turn_runner
    from openclaw_voice.pipeline.demo import DemoInputError, run_demo
    from openclaw_voice.tts.local import LocalTextToSpeech

    if not wavs and not say:
        say = ["Hello OpenClaw, what time is it?"]

    async def main() -> int:
        runner = build_turn_runner(settings, None)
        voice = LocalTextToSpeech(engine=settings.speech.local_tts_engine)
        try:
            await runner.warm_up()
            turns = await run_demo(
                runner, wavs=wavs, say=say, out_dir=out, voice=voice, report=print
            )
        finally:
            await voice.aclose()
            await runner.aclose()
        return EXIT_OK if turns and all(t.status == "completed" for t in turns) else EXIT_FAILURE

    try:
        return asyncio.run(main())
    except DemoInputError as error:
        print(f"demo: {error}", file=sys.stderr)
        return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"]:  # needs no settings: it runs from the deploy playbooks
        from openclaw_voice.ops import probe

        return probe.main(argv[1:])
    arguments = _parser().parse_args(argv)
    offline = (arguments.command == "check" and arguments.offline) or arguments.command == "demo"
    settings = _load(arguments.config, offline=offline)
    if settings is None:
        return EXIT_CONFIG
    if arguments.command in ("demo", "check") and "LOG_LEVEL" not in os.environ:
        settings = dataclasses.replace(settings, log_level="warning")  # keep the dialogue readable
    _configure_observability(settings)
    if arguments.command == "run":
        return _run(settings)
    if arguments.command == "demo":
        return _demo(settings, arguments.wavs, arguments.say, arguments.out)
    if arguments.command == "check":
        return _check(settings, online=arguments.online, offline=offline)
    return _migrate(settings)


if __name__ == "__main__":  # pragma: no cover - `python -m openclaw_voice.cli`
    sys.exit(main())
