"""Capacity: how many concurrent voice sessions one bot process sustains on this machine.

Steps the number of sessions up (one guild, one speaking user each, holding a
conversation with the in-process fake providers: see ``tests/load``) and runs each size
as a fresh load run: a new fake Discord and a new bot process. A size is *sustained*
when every question is answered without an error, our overhead p95 (e2e minus
endpointing minus the providers' own time, see ``tests/load/report.py``) is at most
``--max-overhead-ms`` and no frame was dropped (none lost on the way in, no skipped clock
slot, none lost on the way out). Memory per session is the slope of the bot's steady RSS
over the sizes (least squares), and per size (steady RSS - RSS before joining) / sessions.

    .venv/bin/python -m bench.bench_capacity --sessions 10,25,50,100,150 --seconds 60 \\
        --out build/capacity [--chart docs/img/capacity.png]

Each size's full report (JSON, chart, markdown, the bot's log) is in ``--out/n{size}/``;
``capacity.json`` and ``capacity.png`` summarise. The fake Discord and the simulated
users share the machine with the bot (on 2 cores they take a good part of one core at
100 sessions), as they would not in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

import structlog
from tests.load.bot import EXPERIMENTS
from tests.load.harness import run_load
from tests.load.profile import LoadProfile
from tests.load.report import write_report


def dropped(report: dict[str, Any]) -> int:
    frames = report["frames"]
    return int(
        frames["inbound_dropped"]
        + frames["clock_skipped_slots"]
        + frames["outbound_lost"]
        + sum(frames["capture_failures"].values())
    )


def step_summary(report: dict[str, Any], max_overhead_ms: float) -> dict[str, Any]:
    latency = report["latency_ms"]
    turns, errors = report["turns"], report["errors"]
    overhead_p95 = latency["overhead"].get("p95")
    problems = []
    if report["failure"]:
        problems.append(report["failure"])
    if turns["unanswered"]:
        problems.append(f"{turns['unanswered']} unanswered")
    if errors["turns_by_code"] or errors["unhandled_exceptions"] or errors["log_errors"]:
        problems.append("errors")
    if overhead_p95 is None or overhead_p95 > max_overhead_ms:
        problems.append(f"overhead p95 {overhead_p95} ms")
    if dropped(report):
        problems.append(f"{dropped(report)} frames dropped")
    return {
        "sessions": report["sessions"],
        "turns": turns["asked"],
        "answered": turns["answered"],
        "overhead_ms": latency["overhead"],
        "heard_overhead_ms": latency["heard_overhead"],
        "e2e_ms": latency["e2e"],
        "heard_e2e_ms": latency["heard_e2e"],
        "event_loop_lag_ms": latency["event_loop_lag"],
        "dropped_frames": dropped(report),
        "outbound_late_frames": report["frames"]["outbound_late"],
        "outbound_frames": report["frames"]["outbound_frames"],
        "cpu_percent_of_one_core": report["process"]["cpu_percent_of_one_core"],
        "cpu_ms_per_session_second": report["process"]["cpu_ms_per_session_second"],
        "harness_cpu_seconds": report["process"]["harness_cpu_seconds"],
        "conversation_seconds": report["process"]["conversation_seconds"],
        "turns_per_minute": report["turns"]["per_minute"],
        "rss_mib": report["process"]["rss_mib"],
        "per_session_mib": report["process"]["per_session_mib"],
        "join_seconds": report["join"]["seconds"],
        "load_average": report["machine"]["load_average"],
        "sustained": not problems,
        "problems": problems,
    }


def rss_slope(steps: list[dict[str, Any]]) -> float | None:
    """MiB per session: least-squares slope of steady RSS over the number of sessions."""
    points = [(s["sessions"], s["rss_mib"]["steady"]) for s in steps if s["rss_mib"]["steady"]]
    if len(points) < 2:
        return None
    slope, _ = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    return round(slope, 2)


def render_chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    sizes = [s["sessions"] for s in steps]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=80)
    ax = axes[0]
    for key, label in (("overhead_ms", "overhead"), ("heard_overhead_ms", "heard overhead")):
        for stat, style in (("p95", "-"), ("p50", ":")):
            values = [max(1.0, s[key].get(stat) or 1.0) for s in steps]
            ax.plot(sizes, values, marker="o", ls=style, label=f"{label} {stat}")
    ax.axhline(result["max_overhead_ms"], color="red", ls="--", lw=1, label="goal (p95)")
    failed = [s for s in steps if not s["sustained"]]
    ax.scatter(
        [s["sessions"] for s in failed],
        [max(1.0, s["overhead_ms"].get("p95") or 1.0) for s in failed],
        marker="x",
        s=80,
        color="red",
        zorder=3,
        label="not sustained",
    )
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("our latency (providers excluded)")
    ax = axes[1]
    ax.plot(sizes, [s["cpu_percent_of_one_core"]["mean"] for s in steps], marker="o", label="mean")
    ax.plot(sizes, [s["cpu_percent_of_one_core"]["p95"] for s in steps], marker=".", label="p95")
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("bot CPU, % of one core")
    ax.legend(fontsize=7)
    ax.set_title("bot process CPU")
    ax = axes[2]
    ax.plot(sizes, [s["rss_mib"]["steady"] for s in steps], marker="o", label="steady")
    ax.plot(sizes, [s["rss_mib"]["ready"] for s in steps], marker=".", label="before joining")
    ax.set_xlabel("concurrent sessions")
    ax.set_ylabel("RSS (MiB)")
    ax.legend(fontsize=7)
    slope = result["rss_mib_per_session"]
    ax.set_title(f"bot RSS ({slope} MiB per session)" if slope is not None else "bot RSS")
    figure.suptitle(
        f"capacity: {result['sustained_sessions']} sessions sustained "
        f"(overhead p95 <= {result['max_overhead_ms']:.0f} ms, no dropped frame)"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.replot is not None:  # only draw the chart of an earlier run
        result: dict[str, Any] = json.loads(args.replot.read_text(encoding="utf-8"))
        complete = [s for s in result["steps"] if "overhead_ms" in s]
        render_chart(dict(result, steps=complete), args.chart or args.replot.with_suffix(".png"))
        return result
    print(
        "| sessions | answered | overhead p50 / p95 (ms) | heard overhead p50 / p95 (ms) "
        "| dropped | late out | bot CPU % | CPU ms per session-s | RSS steady (MiB) "
        "| MiB per session | sustained |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    steps: list[dict[str, Any]] = []
    for size in [int(n) for n in args.sessions.split(",")]:
        profile = LoadProfile(
            guilds=size,
            speakers=1,
            turns=None,
            seconds=args.seconds,
            stagger=args.stagger,
            think=(args.think[0], args.think[1]),
            experiments=tuple(args.experiment),
            seed=args.seed,
        )
        out = args.out / f"n{size}"
        try:
            report = write_report(await run_load(profile, out), out)
        except Exception as error:  # a size that cannot even run is not sustained
            steps.append({"sessions": size, "sustained": False, "problems": [repr(error)]})
            print(f"| {size} | failed: {error!r} |")
            break
        step = step_summary(report, args.max_overhead_ms)
        steps.append(step)
        print(
            f"| {size} | {step['answered']}/{step['turns']} | "
            f"{step['overhead_ms'].get('p50')} / {step['overhead_ms'].get('p95')} | "
            f"{step['heard_overhead_ms'].get('p50')} / {step['heard_overhead_ms'].get('p95')} | "
            f"{step['dropped_frames']} | {step['outbound_late_frames']} | "
            f"{step['cpu_percent_of_one_core']['mean']} | {step['cpu_ms_per_session_second']} | "
            f"{step['rss_mib']['steady']} | "
            f"{step['per_session_mib']['steady']} | "
            f"{'yes' if step['sustained'] else 'no: ' + ', '.join(step['problems'])} |",
            flush=True,
        )
        if not step["sustained"] and not args.keep_going:
            break
    complete = [s for s in steps if "overhead_ms" in s]
    sustained = [s["sessions"] for s in steps if s["sustained"]]
    result = {
        "command": "python -m bench.bench_capacity " + " ".join(args.argv),
        "max_overhead_ms": args.max_overhead_ms,
        "seconds_per_size": args.seconds,
        "think_seconds": list(args.think),
        "experiments": list(args.experiment),
        "sustained_sessions": max(sustained, default=0),
        "rss_mib_per_session": rss_slope(complete),
        "steps": steps,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "capacity.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    if complete:
        render_chart(dict(result, steps=complete), args.out / "capacity.png")
        if args.chart is not None:
            render_chart(dict(result, steps=complete), args.chart)
    print(
        f"sustained: {result['sustained_sessions']} sessions; "
        f"{result['rss_mib_per_session']} MiB per session (slope); {args.out / 'capacity.json'}"
    )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", default="10,25,50,100,150")
    parser.add_argument("--seconds", type=float, default=60.0, help="conversation per size")
    parser.add_argument("--stagger", type=float, default=8.0)
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(0.5, 1.5),
        metavar=("MIN", "MAX"),
        help="seconds a user waits after a reply before the next question (activity)",
    )
    parser.add_argument("--max-overhead-ms", type=float, default=30.0)
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        choices=sorted(EXPERIMENTS),
        help="a what-if change patched into the bot's process (tests/load/bot.py)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-going", action="store_true", help="run every size")
    parser.add_argument("--out", type=Path, default=Path("build/capacity"))
    parser.add_argument("--chart", type=Path, help="also write the chart here")
    parser.add_argument("--replot", type=Path, help="only redraw the chart of a capacity.json")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    return args


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main(parse_args()))
