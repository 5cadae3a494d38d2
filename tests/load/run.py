"""Run a load test from the command line and write its report.

    .venv/bin/python -m tests.load.run --guilds 100 --speakers 1 --minutes 5 --out build/load/
    .venv/bin/python -m tests.load.run --guilds 10 --turns 5 --fault stt:0.05 --out build/load/
    .venv/bin/python -m tests.load.run --guilds 20 --soak-seconds 1800 --out build/soak/

Writes ``report.json``, ``report.png`` and ``report.md`` (plus the bot's ``bot.log`` and
``bot.stderr``) into ``--out`` and prints the summary. Exit status 1 when a question went
unanswered, an error occurred beyond the injected faults, or (with ``--soak-seconds``)
resources did not stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import structlog

from tests.load.bot import EXPERIMENTS
from tests.load.harness import run_load
from tests.load.profile import EVENTS, Fault, Latency, LoadProfile, ProviderProfile
from tests.load.report import write_report


def key_values(text: str) -> dict[str, float]:
    """``loss=10,jitter=0.03`` -> {"loss": 10.0, "jitter": 0.03}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected name=value,..., got {text!r}")
    return {name.strip(): float(value) for name, value in pairs}


def timed_event(text: str) -> tuple[float, str]:
    """``12:gateway-drop`` -> (12.0, "gateway-drop")."""
    at, _, action = text.partition(":")
    if action not in EVENTS:
        raise argparse.ArgumentTypeError(f"unknown event {action!r}; known: {', '.join(EVENTS)}")
    return float(at), action


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--guilds", type=int, default=3, help="concurrent voice sessions")
    parser.add_argument("--speakers", type=int, default=1, help="simulated speakers per guild")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--turns", type=int, help="questions per guild (default 3)")
    size.add_argument("--minutes", type=float, help="minutes of conversation")
    size.add_argument("--soak-seconds", type=float, help="seconds of steady conversation (soak)")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"))
    parser.add_argument("--stagger", type=float, default=3.0)
    parser.add_argument("--stt-ms", type=float, default=300.0, help="STT latency median")
    parser.add_argument("--agent-ms", type=float, default=400.0, help="agent first token median")
    parser.add_argument("--token-ms", type=float, default=20.0, help="agent token gap median")
    parser.add_argument("--tts-ms", type=float, default=150.0, help="TTS first byte median")
    parser.add_argument("--spread", type=float, default=0.35, help="log-normal sigma (0: fixed)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=Fault.parse,
        help="stage:rate[:kind[:persistent|transient]], e.g. stt:0.05:unavailable (repeatable)",
    )
    parser.add_argument(
        "--packets",
        type=key_values,
        default={},
        help="faults on the speakers' packets, e.g. loss=10,reorder=5,jitter=0.03 "
        "(percent; jitter in seconds; see PacketFaults)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        help="NAME=VALUE for the bot, e.g. STT_TIMEOUT_SECONDS=1 (repeatable)",
    )
    parser.add_argument(
        "--event",
        action="append",
        default=[],
        type=timed_event,
        help=f"SECONDS:ACTION during the conversation, ACTION one of {', '.join(EVENTS)}",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int)
    parser.add_argument("--no-dave", action="store_true")
    parser.add_argument("--log-level", default="warning", help="the bot's log level")
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        choices=sorted(EXPERIMENTS),
        help="a what-if change patched into the bot's process (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=Path("build/load"))
    return parser.parse_args(argv)


def profile_from(args: argparse.Namespace) -> LoadProfile:
    seconds: float | None = None
    if args.minutes is not None:
        seconds = args.minutes * 60
    elif args.soak_seconds is not None:
        seconds = args.soak_seconds
    turns = args.turns if args.turns is not None else (None if seconds is not None else 3)
    spread = args.spread
    return LoadProfile(
        guilds=args.guilds,
        speakers=args.speakers,
        turns=turns,
        seconds=seconds,
        think=tuple(args.think),
        stagger=args.stagger,
        providers=ProviderProfile(
            stt=Latency(args.stt_ms, spread),
            agent_first_token=Latency(args.agent_ms, spread),
            token_gap=Latency(args.token_ms, min(spread, 0.2)),
            tts_first_byte=Latency(args.tts_ms, spread),
        ),
        faults=tuple(args.fault),
        seed=args.seed,
        shards=args.shards,
        log_level=args.log_level,
        dave=not args.no_dave,
        experiments=tuple(args.experiment),
        packets=args.packets,
        settings=dict(item.split("=", 1) for item in args.setting),
        events=tuple(args.event),
    )


def verdict(report: dict[str, Any], *, soak: bool) -> list[str]:
    """What makes the run a failure (empty when it passed)."""
    problems = []
    turns, errors = report["turns"], report["errors"]
    if report["failure"]:
        problems.append(f"run failed: {report['failure']}")
    if turns["unanswered"]:
        problems.append(f"{turns['unanswered']} question(s) unanswered")
    if errors["turns_by_code"] != errors["expected_turns_by_code"]:
        problems.append(
            f"turn errors {errors['turns_by_code']} != expected {errors['expected_turns_by_code']}"
        )
    if errors["provider_attempts_by_code"] != errors["injected_by_code"]:
        problems.append(
            f"provider errors {errors['provider_attempts_by_code']} "
            f"!= injected {errors['injected_by_code']}"
        )
    if turns["extra_reports"]:
        problems.append(f"{turns['extra_reports']} question(s) answered more than once")
    state = report["state_at_end"]
    if report["sessions"] and state["sessions"] != report["sessions"]:
        problems.append(f"voice sessions at the end: {state}, joined {report['sessions']}")
    if errors["unhandled_exceptions"] or errors["fake_errors"] or errors["log_errors"]:
        problems.append("errors logged (see report.json errors)")
    if soak and not report["stability"].get("passed", False):
        problems.append(f"not flat: {report['stability']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    profile = profile_from(args)
    data = asyncio.run(run_load(profile, args.out))
    report = write_report(data, args.out)
    print((args.out / "report.md").read_text(encoding="utf-8"))
    print(f"report: {args.out / 'report.json'}, chart: {args.out / 'report.png'}")
    problems = verdict(report, soak=args.soak_seconds is not None)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
