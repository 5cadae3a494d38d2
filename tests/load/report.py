"""A load run's report: figures (JSON), a chart (PNG) and a summary (markdown).

Latencies (milliseconds):

- ``e2e``: the bot's own measure (and metric), from the last voiced frame of the user's
  utterance as the bot received it to the first chunk of the reply taken by playback;
- ``endpointing``: from that last voiced frame until the utterance was decided over (the
  VAD's end-of-speech silence, 500 ms, plus jitter buffer and VAD window granularity);
- ``overhead``: ``e2e - endpointing - provider time``, where provider time is what the fake
  providers were told to take for this turn (STT, the agent until the first sentence is
  complete, the first sentence's TTS first byte): the pipeline's own time, comparable to
  ``bench/bench_pipeline.py``. Only turns without an injected fault;
- ``heard_e2e``: from the send time of the question's last voiced frame (the simulated
  user's client) to the first frame with sound the fake received from the bot;
- ``heard_overhead``: ``heard_e2e - 500 ms end-of-speech silence - provider time``:
  everything of ours a listener waits for, network, jitter buffer, VAD granularity,
  pipeline, playback thread and encoding included.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.load.driver import LATE_SECONDS
from tests.load.harness import RunData

# Reasons counted by audio_frames_dropped_total that are not losses.
NOT_DROPS = frozenset({"opted_out", "interrupted"})
# Drops a stall causes (of the bot's process, or of the simulated users' sender): the
# jitter buffer trims a burst after a stall ("overflow") or refuses a packet whose slot
# has been played ("late"). Any other reason is a defect whatever the machine's load.
TIMING_DROPS = frozenset({"overflow", "late"})
STALL_SECONDS = 0.1  # a sender lateness or event-loop lag this long is a stall


@dataclass(frozen=True)
class StabilityBounds:
    """How much growth a steady run may show between its first and last quarter."""

    rss_mib: float = 16.0  # median RSS
    # Median open file descriptors: a leak raises it; a transient caught by one 1 s sample
    # does not (the most in a quarter did: +3 for under a second in a passing soak).
    fds: int = 2
    threads_per_session: float = 1.0  # most threads: a reply's player thread per session
    threads: int = 2
    tasks_per_session: float = 4.0  # most asyncio tasks: a turn's tasks per session
    tasks: int = 8


def percentiles(values: Iterable[float | None], scale: float = 1000.0) -> dict[str, float]:
    """count, p50, p95, p99, max and mean of ``values`` (seconds -> ms by default)."""
    data = sorted(v * scale for v in values if v is not None)
    if not data:
        return {"count": 0}

    def pick(share: float) -> float:
        return data[min(len(data) - 1, max(0, math.ceil(share * len(data)) - 1))]

    return {
        "count": len(data),
        "p50": round(pick(0.50), 2),
        "p95": round(pick(0.95), 2),
        "p99": round(pick(0.99), 2),
        "max": round(data[-1], 2),
        "mean": round(statistics.fmean(data), 2),
    }


def _series(data: RunData) -> list[dict[str, Any]]:
    """/proc samples with CPU % (of one core) between samples, times from spawn."""
    origin = data.phases.get("spawned", 0.0)
    out: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    for sample in data.proc_samples:
        cpu = None
        if previous is not None and sample["t"] > previous["t"]:
            cpu = (
                100
                * (sample["cpu_seconds"] - previous["cpu_seconds"])
                / (sample["t"] - previous["t"])
            )
        out.append(
            {
                "t": round(sample["t"] - origin, 3),
                "cpu_percent": None if cpu is None else round(cpu, 1),
                "rss_mib": round(sample["rss_mib"], 1),
                "threads": sample["threads"],
                "fds": sample["fds"],
            }
        )
        previous = sample
    return out


def _bot_series(data: RunData) -> list[dict[str, Any]]:
    origin = data.phases.get("spawned", 0.0)
    return [
        {
            "t": round(s["t"] - origin, 3),
            "tasks": s["tasks"],
            "threads": s["threads"],
            "loop_lag_ms": round(s["loop_lag_ms"], 2),
            "sessions": s["sessions"],
            "clock_skipped": s["clock_skipped"],
        }
        for s in data.bot_samples
    ]


def _at(series: list[dict[str, Any]], key: str, t: float | None) -> float | None:
    """The value of ``key`` in the last sample at or before ``t`` (seconds from spawn)."""
    if t is None:
        return None
    found: float | None = None
    for sample in series:
        if sample["t"] <= t + 1e-6 and sample.get(key) is not None:
            found = float(sample[key])
    return found


def _window(
    series: list[dict[str, Any]], start: float, end: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first and the last quarter of ``series`` within [start, end]."""
    inside = [s for s in series if start <= s["t"] <= end]
    quarter = max(1, len(inside) // 4)
    return inside[:quarter], inside[-quarter:]


def stability(
    data: RunData, proc: list[dict[str, Any]], bot: list[dict[str, Any]], sessions: int
) -> dict[str, Any]:
    """Growth of RSS, fds, threads and tasks over the steady part of the conversation."""
    bounds = StabilityBounds()
    origin = data.phases.get("spawned", 0.0)
    start = data.phases.get("conversation", origin) - origin
    end = data.phases.get("conversation_end", origin) - origin
    warmup = min(30.0, 0.25 * (end - start))
    first, last = _window(proc, start + warmup, end)
    bot_first, bot_last = _window(bot, start + warmup, end)
    if len(first) < 2 or len(bot_first) < 1:
        return {"checked": False, "reason": "conversation too short for a steady window"}

    def growth_median(key: str) -> float:
        before = statistics.median(float(s[key]) for s in first)
        return round(statistics.median(float(s[key]) for s in last) - before, 2)

    def growth_max(
        rows_first: list[dict[str, Any]], rows_last: list[dict[str, Any]], key: str
    ) -> int:
        return int(max(s[key] for s in rows_last) - max(s[key] for s in rows_first))

    checks = {
        "rss_mib": (growth_median("rss_mib"), bounds.rss_mib),
        "fds": (growth_median("fds"), bounds.fds),
        "threads": (
            growth_max(first, last, "threads"),
            bounds.threads + bounds.threads_per_session * sessions,
        ),
        "tasks": (
            growth_max(bot_first, bot_last, "tasks"),
            bounds.tasks + bounds.tasks_per_session * sessions,
        ),
    }
    second_half = [s for s in proc if (start + end) / 2 <= s["t"] <= end]
    slope = None
    if len(second_half) >= 3:
        slope, _ = statistics.linear_regression(
            [s["t"] for s in second_half], [float(s["rss_mib"]) for s in second_half]
        )
    turns = [t for t in data.turns if t["asked_at"] - origin >= start + warmup]
    half = len(turns) // 2
    unexpected = [
        1 if (t["code"] is not None and not t["injected"]) or not t["answered"] else 0
        for t in turns
    ]
    return {
        "checked": True,
        "window_seconds": [round(start + warmup, 1), round(end, 1)],
        "bounds": asdict(bounds),
        "growth": {name: value for name, (value, _) in checks.items()},
        "limits": {name: limit for name, (_, limit) in checks.items()},
        "flat": {name: value <= limit for name, (value, limit) in checks.items()},
        # Informational: RSS trend over the second half (caches fill early, then stop).
        "rss_mib_per_minute_second_half": None if slope is None else round(60 * slope, 3),
        "unexpected_errors_first_half": sum(unexpected[:half]),
        "unexpected_errors_second_half": sum(unexpected[half:]),
        "passed": all(value <= limit for value, limit in checks.values()) and sum(unexpected) == 0,
    }


def _metric(final: dict[str, Any], name: str, label: str) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for labels, value in final.get("metrics", {}).get(name, []):
        counts[str(labels.get(label, ""))] += value
    return {key: int(value) for key, value in sorted(counts.items())}


def expected_turn_errors(turns: list[dict[str, Any]]) -> dict[str, int]:
    """Turn errors the injected faults should cause: one per turn with a persistent fault."""
    expected: Counter[str] = Counter()
    for turn in turns:
        persistent = [code for _, code, lasting in turn["injected"] if lasting]
        if persistent:
            expected[str(persistent[0])] += 1
    return dict(sorted(expected.items()))


def build_report(data: RunData) -> dict[str, Any]:
    profile = data.profile
    final = data.final
    proc = _series(data)
    bot = _bot_series(data)
    origin = data.phases.get("spawned", 0.0)
    phases = {name: round(t - origin, 3) for name, t in data.phases.items()}
    sessions = int(data.join.get("sessions", 0))
    turns = data.turns
    answered = sum(1 for t in turns if t["answered"])
    statuses = Counter(t["status"] for t in turns)

    rss_ready = _at(proc, "rss_mib", phases.get("join"))
    rss_joined = _at(proc, "rss_mib", phases.get("joined"))
    conv_start, conv_end = phases.get("conversation", 0.0), phases.get("conversation_end", 0.0)
    steady = [
        s["rss_mib"]
        for s in proc
        if conv_start + 0.75 * (conv_end - conv_start) <= s["t"] <= conv_end
    ]
    rss_steady = round(statistics.median(steady), 1) if steady else None
    cpu = [
        s["cpu_percent"]
        for s in proc
        if conv_start <= s["t"] <= conv_end and s["cpu_percent"] is not None
    ]
    conversation_seconds = conv_end - conv_start

    dropped_by_reason = _metric(final, "audio_frames_dropped_total", "reason")
    inbound_dropped = sum(v for k, v in dropped_by_reason.items() if k not in NOT_DROPS)
    timing_drops = sum(v for k, v in dropped_by_reason.items() if k in TIMING_DROPS)
    send_lateness = percentiles(data.send_lateness)
    loop_lag = percentiles((s["loop_lag_ms"] for s in bot), scale=1.0)
    outbound_frames = sum(t["frames"] for t in turns)
    report: dict[str, Any] = {
        "kind": "openclaw-voice load run",
        "started": data.started,
        "machine": {"cores": data.cores, "load_average": data.load_average},
        "profile": profile.to_json(),
        "failure": data.failure,
        "phases_seconds": phases,
        "sessions": sessions,
        "speakers": sessions * profile.speakers,
        "guild_ids": data.guild_ids,
        "state_at_end": {
            "sessions": final.get("sessions_at_end"),
            "recorded_presence": final.get("presence_at_end"),
            "discord_voice_clients": final.get("discord_voice_clients"),
        },
        # After the bot exited: the guilds its state database says to rejoin, and those
        # where the fake Discord still has it in a voice channel.
        "after_exit": {
            "presence": final.get("presence_after_exit"),
            "in_voice": final.get("in_voice_after_exit"),
        },
        "voice_disconnects_by_reason": _metric(final, "discord_voice_disconnect_total", "reason"),
        # From the stop command to the bot's exit: demotion (leaving every voice channel,
        # keeping the presence) and closing the client.
        "shutdown_seconds": round(phases["stopped"] - phases["stop"], 2)
        if "stopped" in phases and "stop" in phases
        else None,
        "events": data.events,
        # What the fake saw (identify, resumed), and the sessions the bot counted as lost.
        "gateway": {
            **data.gateway,
            "disconnects": sum(_metric(final, "discord_gateway_disconnect_total", "").values()),
        },
        "join": {
            "seconds": round(float(data.join.get("seconds", 0.0)), 2),
            "failures": data.join.get("failures", []),
        },
        "turns": {
            "asked": len(turns),
            "answered": answered,
            "unanswered": len(turns) - answered,
            "by_status": dict(sorted(statuses.items())),
            "bot_statuses": final.get("statuses", {}),
            "stale_reports": sum(t["stale_events"] for t in turns),
            # Reports the driver could not pair with a question: a reply given twice.
            "extra_reports": int(final.get("extra_reports", 0)),
            "per_minute": round(60 * len(turns) / conversation_seconds, 1)
            if conversation_seconds > 0
            else 0.0,
        },
        "errors": {
            "turns_by_code": {
                str(k): v for k, v in sorted(final.get("turn_errors_by_code", {}).items())
            },
            "expected_turns_by_code": expected_turn_errors(turns),
            "provider_attempts_by_code": {
                str(k): v for k, v in sorted(final.get("provider_errors_by_code", {}).items())
            },
            "injected_by_code": {
                str(k): v for k, v in sorted(final.get("injected_by_code", {}).items())
            },
            "pipeline_error_total": _metric(final, "pipeline_error_total", "error_code"),
            "provider_served": final.get("provider_served", {}),
            "unhandled_exceptions": final.get("unhandled", []),
            "log_lines_by_level": data.log_levels,
            "log_errors": data.log_errors,
            "fake_errors": data.fake_errors,
            "bot_exit_code": data.exit_code,
        },
        "latency_ms": {
            "e2e": percentiles(t["e2e"] for t in turns),
            "endpointing": percentiles(t["endpointing"] for t in turns),
            "provider_floor": percentiles(t["provider_floor"] for t in turns),
            "overhead": percentiles(t["overhead"] for t in turns),
            "heard_e2e": percentiles(t["heard_e2e"] for t in turns),
            "heard_overhead": percentiles(t["heard_overhead"] for t in turns),
            "vad_end_skew": percentiles(t["vad_end_skew"] for t in turns),
            "speaker_send_lateness": send_lateness,
            "event_loop_lag": loop_lag,
        },
        "frames": {
            "inbound_dropped": inbound_dropped,
            "inbound_dropped_by_reason": dropped_by_reason,
            "inbound_defect_drops": inbound_dropped - timing_drops,
            "stalls": {
                "sender_max_lateness_ms": send_lateness.get("max", 0.0),
                "bot_max_loop_lag_ms": loop_lag.get("max", 0.0),
                "stalled": max(send_lateness.get("max", 0.0), loop_lag.get("max", 0.0))
                >= STALL_SECONDS * 1000,
            },
            "inbound_concealed": _metric(final, "audio_frames_concealed_total", "method"),
            "receive_counts": final.get("receive", {}),
            "clock_skipped_slots": final.get("clock_skipped", 0),
            "clock_max_tick_ms": round(float(final.get("clock_max_tick_ms", 0.0)), 1),
            "outbound_frames": outbound_frames,
            "outbound_lost": sum(t["lost"] for t in turns),
            "outbound_late": sum(t["late"] for t in turns),
            "outbound_late_threshold_ms": LATE_SECONDS * 1000,
            "outbound_max_lateness_ms": round(
                1000 * max((t["max_lateness"] for t in turns), default=0.0), 1
            ),
            "capture_failures": data.capture_failures,
        },
        "process": {
            "rss_mib": {
                "ready": rss_ready,
                "joined": rss_joined,
                "steady": rss_steady,
                "peak": max((s["rss_mib"] for s in proc), default=None),
            },
            "per_session_mib": {
                "joined": round((rss_joined - rss_ready) / sessions, 2)
                if rss_joined is not None and rss_ready is not None and sessions
                else None,
                "steady": round((rss_steady - rss_ready) / sessions, 2)
                if rss_steady is not None and rss_ready is not None and sessions
                else None,
            },
            "cpu_percent_of_one_core": {
                "mean": round(statistics.fmean(cpu), 1) if cpu else None,
                "p95": percentiles(cpu, scale=1.0).get("p95") if cpu else None,
            },
            # CPU time (all threads) per session and second of conversation: holds roughly
            # on a busy machine, where the percentages do not.
            "cpu_ms_per_session_second": round(10 * statistics.fmean(cpu) / sessions, 2)
            if cpu and sessions
            else None,
            "harness_cpu_seconds": round(data.harness_cpu_seconds, 1),
            "conversation_seconds": round(conversation_seconds, 1),
        },
        "stability": stability(data, proc, bot, sessions),
        "timeline": {"proc": proc, "bot": bot},
        "turn_log": turns,
    }
    return report


def _fmt(stats: dict[str, float], key: str) -> str:
    value = stats.get(key)
    return "-" if value is None else f"{value:.1f}"


def _summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    turns, errors = report["turns"], report["errors"]
    frames, process = report["frames"], report["process"]
    rss, per_session = process["rss_mib"], process["per_session_mib"]
    cpu = process["cpu_percent_of_one_core"]
    outcomes = ", ".join(f"{k} {v}" for k, v in turns["by_status"].items())
    return [
        (
            "turns asked / answered",
            f"{turns['asked']} / {turns['answered']} ({turns['per_minute']} a minute)",
        ),
        ("outcomes", outcomes),
        (
            "turn errors by code",
            f"{errors['turns_by_code'] or 'none'} "
            f"(the injected faults make {errors['expected_turns_by_code'] or 'none'})",
        ),
        (
            "failed provider attempts by code",
            f"{errors['provider_attempts_by_code'] or 'none'} "
            f"(injected {errors['injected_by_code'] or 'none'})",
        ),
        ("bot log lines by level", str(errors["log_lines_by_level"] or "none")),
        ("unhandled exceptions", str(len(errors["unhandled_exceptions"]))),
        (
            "inbound frames dropped",
            f"{frames['inbound_dropped']} {frames['inbound_dropped_by_reason'] or ''}; "
            f"clock slots skipped {frames['clock_skipped_slots']}",
        ),
        (
            f"outbound frames / lost / late (> {frames['outbound_late_threshold_ms']:.0f} ms)",
            f"{frames['outbound_frames']} / {frames['outbound_lost']} / {frames['outbound_late']}",
        ),
        (
            "bot RSS ready / joined / steady / peak (MiB)",
            f"{rss['ready']} / {rss['joined']} / {rss['steady']} / {rss['peak']}",
        ),
        (
            "RSS per session, joined / steady (MiB)",
            f"{per_session['joined']} / {per_session['steady']}",
        ),
        ("bot CPU, mean / p95 (% of one core)", f"{cpu['mean']} / {cpu['p95']}"),
    ]


LATENCY_ROWS = (
    "e2e",
    "endpointing",
    "provider_floor",
    "overhead",
    "heard_e2e",
    "heard_overhead",
    "vad_end_skew",
    "event_loop_lag",
)


def render_markdown(report: dict[str, Any], chart: str | None) -> str:
    profile = report["profile"]
    size = (
        f"{profile['turns']} turns per guild"
        if profile["turns"] is not None
        else f"{profile['seconds']:.0f} s of conversation"
    )
    load = report["machine"]["load_average"].get("start", [0.0])[0]
    lines = [
        f"# Load run {report['started']}",
        "",
        f"{report['sessions']} sessions x {profile['speakers']} speaker(s), {size}, "
        f"seed {profile['seed']}; {report['machine']['cores']} cores, load average {load:.2f} "
        "at the start. Absolute figures depend on what else the machine was doing.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in _summary_rows(report)),
        "",
        "| latency (ms) | n | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for name in LATENCY_ROWS:
        stats = report["latency_ms"][name]
        lines.append(
            f"| {name} | {stats.get('count', 0)} | {_fmt(stats, 'p50')} | {_fmt(stats, 'p95')} "
            f"| {_fmt(stats, 'p99')} | {_fmt(stats, 'max')} |"
        )
    soak = report["stability"]
    if soak.get("checked"):
        growth = ", ".join(
            f"{name} {soak['growth'][name]:+} (limit {soak['limits'][name]:g})"
            for name in soak["growth"]
        )
        window = soak["window_seconds"]
        verdict = "flat" if soak["passed"] else "NOT flat"
        lines += [
            "",
            f"Stability over {window[0]}-{window[1]} s (first vs last quarter): "
            f"{growth} -> {verdict}. RSS trend over the second half: "
            f"{soak['rss_mib_per_minute_second_half']} MiB a minute.",
        ]
    if chart:
        lines += ["", f"![load run]({chart})"]
    lines += ["", "Definitions: see `tests/load/report.py`.", ""]
    return "\n".join(lines)


def render_chart(report: dict[str, Any], path: Path) -> None:
    """Four panels: CPU and RSS, threads/fds/tasks, per-turn latencies, overhead spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proc = report["timeline"]["proc"]
    bot = report["timeline"]["bot"]
    phases = report["phases_seconds"]
    turns = report["turn_log"]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=80)
    title = (
        f"{report['sessions']} sessions x {report['profile']['speakers']} speaker(s), "
        f"{report['turns']['answered']}/{report['turns']['asked']} turns answered"
    )
    figure.suptitle(title)

    ax = axes[0][0]
    ax.plot(
        [s["t"] for s in proc if s["cpu_percent"] is not None],
        [s["cpu_percent"] for s in proc if s["cpu_percent"] is not None],
        color="tab:red",
        lw=1,
    )
    ax.set_ylabel("bot CPU (% of one core)", color="tab:red")
    ax.set_xlabel("seconds")
    twin = ax.twinx()
    twin.plot([s["t"] for s in proc], [s["rss_mib"] for s in proc], color="tab:blue", lw=1.5)
    twin.set_ylabel("RSS (MiB)", color="tab:blue")
    top = ax.get_ylim()[1]
    for row, name in enumerate(("ready", "joined", "conversation_end")):
        if name in phases:
            ax.axvline(phases[name], color="grey", ls=":", lw=1)
            ax.text(phases[name], top * (1 - 0.06 * row), name, fontsize=7, va="top")
    ax.set_title("CPU and memory")

    ax = axes[0][1]
    ax.plot([s["t"] for s in proc], [s["threads"] for s in proc], label="threads")
    ax.plot([s["t"] for s in proc], [s["fds"] for s in proc], label="fds")
    ax.plot([s["t"] for s in bot], [s["tasks"] for s in bot], label="asyncio tasks")
    ax.set_xlabel("seconds")
    ax.legend(fontsize=8)
    ax.set_title("threads, file descriptors, tasks")

    ax = axes[1][0]
    for key, colour in (("heard_e2e", "tab:purple"), ("e2e", "tab:green")):
        points = [(t["t"], t[key]) for t in turns if t[key] is not None]
        if points:
            ax.scatter(
                [p[0] for p in points], [p[1] * 1000 for p in points], s=6, color=colour, label=key
            )
    ax.set_ylabel("ms")
    ax.set_xlabel("turn asked at (s)")
    ax.legend(fontsize=8)
    ax.set_title("time to first reply audio, per turn")

    ax = axes[1][1]
    for key, colour in (("overhead", "tab:green"), ("heard_overhead", "tab:purple")):
        values = [t[key] * 1000 for t in turns if t[key] is not None]
        if values:
            ax.hist(values, bins=30, alpha=0.6, color=colour, label=key)
    ax.axvline(30, color="red", ls="--", lw=1, label="30 ms")
    ax.set_xlabel("ms")
    ax.legend(fontsize=8)
    ax.set_title("our overhead per turn (providers excluded)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_report(data: RunData, out_dir: Path) -> dict[str, Any]:
    """``report.json``, ``report.png`` and ``report.md`` in ``out_dir``; returns the report."""
    report = build_report(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    render_chart(report, out_dir / "report.png")
    (out_dir / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report, "report.png"), encoding="utf-8")
    return report
