"""Storage faults while the real bot holds conversations (the ``tests/load`` harness).

The state database locked by another process, its filesystem turning read-only, and the
disk of the state and the log filling up (tests/load/storage.py does each for real: a
second SQLite connection, a kernel remount after a filesystem error, a full tmpfs). Each
test asserts what every fault test does (no unhandled exception, no question unanswered or
answered twice, no guild state lost, exit code 0) and that the fault was felt and counted:
store errors in ``store_errors_total``, log write failures reported on stderr, rate-limited.
Every turn writes its usage (the daily budgets are on), so writes happen during each fault.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from openclaw_voice.store.state import BUSY_TIMEOUT_MS
from tests.load.harness import RunData, run_load
from tests.load.profile import LoadProfile
from tests.load.report import write_report
from tests.load.run import verdict
from tests.load.storage import STATE_COPY, sandbox_unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Budgets far from used up: every turn records its usage, nobody is cut off.
BUDGETS = {
    "BUDGET_STT_SECONDS_PER_DAY": "1000000",
    "BUDGET_TTS_CHARACTERS_PER_DAY": "100000000",
    "BUDGET_LLM_TOKENS_PER_DAY": "100000000",
}
# The error-level lines a storage fault may log (the store's own, nothing else).
STORE_ERRORS = ("state database error:", "state changes lost:")
SANDBOX_MISSING = sandbox_unavailable()
needs_sandbox = pytest.mark.skipif(SANDBOX_MISSING is not None, reason=SANDBOX_MISSING or "")


def store_errors(data: RunData) -> Counter[str]:
    """``store_errors_total`` by operation, from the bot's final metrics."""
    samples = data.final.get("metrics", {}).get("store_errors_total", [])
    return Counter({labels["operation"]: int(value) for labels, value in samples})


def event_times(report: dict[str, Any]) -> dict[str, float]:
    """When each event was carried out, seconds after the bot was spawned."""
    return {event["action"]: event["t"] for event in report["events"]}


def turns_between(report: dict[str, Any], start: float, end: float) -> list[dict[str, Any]]:
    return [turn for turn in report["turn_list"] if start <= turn["t"] < end]


async def run(profile: LoadProfile, out: Path) -> tuple[dict[str, Any], RunData]:
    data = await run_load(profile, out)
    report = write_report(data, out)
    report["turn_list"] = data.turns
    # Store errors are logged at error level: allowed here, every other check is not.
    problems = [p for p in verdict(report, soak=False) if not p.startswith("errors logged")]
    assert problems == [], report["errors"]
    turns, errors, state = report["turns"], report["errors"], report["state_at_end"]
    assert turns["asked"] == turns["answered"] == profile.guilds * (profile.turns or 0)
    assert turns["extra_reports"] == 0
    assert (state["sessions"], state["recorded_presence"]) == (profile.guilds, profile.guilds)
    assert report["after_exit"]["presence"] == sorted(report["guild_ids"])
    assert errors["unhandled_exceptions"] == []
    assert errors["fake_errors"] == []
    unexpected = [e for e in errors["log_errors"] if not e.startswith(STORE_ERRORS)]
    assert unexpected == []
    assert errors["bot_exit_code"] == 0
    assert "Traceback" not in (out / "bot.stderr").read_text()
    return report, data


async def test_a_locked_state_database_holds_up_no_answer_and_loses_no_presence(
    tmp_path: Path,
) -> None:
    """Another process holds the database's write lock for about 19 s: every write waits
    out the busy timeout and fails, the turns' usage and the presence a rejoin records
    among them. No answer waits for the database; what was refused is written once it is
    free (the rejoin comes after the first guild's first turn, over 5 s before that)."""
    profile = LoadProfile(
        guilds=2,
        turns=4,
        seed=11,
        events=((1.0, "state-lock"), (2.0, "voice-close-4006"), (20.0, "state-unlock")),
        settings=BUDGETS,
    )
    report, data = await run(profile, tmp_path)
    errors = store_errors(data)
    assert errors["add_usage"] > 0, errors  # the turns' usage, refused while locked
    times = event_times(report)
    locked = turns_between(report, times["state-lock"], times["state-unlock"])
    assert len(locked) >= 3, [turn["t"] for turn in report["turn_list"]]
    # What the bot itself adds to a turn (beyond endpointing and the providers' time):
    # a turn waiting for the database would show the busy timeout here.
    overheads = [turn["overhead"] for turn in locked]
    assert max(overheads) < BUSY_TIMEOUT_MS / 1000 / 5, overheads
    [lock] = [event for event in report["events"] if event["action"] == "state-lock"]
    rejoined = report["guild_ids"][0]
    assert presence_updated(tmp_path)[rejoined] >= lock["locked_at"]  # retried, not lost


def presence_updated(out: Path) -> dict[int, str]:
    """When each guild's presence row was last written, from the run's state database."""
    with contextlib.closing(sqlite3.connect(out / STATE_COPY)) as db:
        rows = db.execute("SELECT guild_id, updated_at FROM guild_voice_state").fetchall()
    return {int(guild_id): str(updated) for guild_id, updated in rows}


@needs_sandbox
async def test_a_state_filesystem_turning_read_only_loses_no_conversation(
    tmp_path: Path,
) -> None:
    """A filesystem error remounts the state read-only 3 s in, for good: writes fail at
    once (no waiting), reads go on, the bot answers every question and exits cleanly with
    its presence still recorded."""
    profile = LoadProfile(
        guilds=2, turns=4, seed=12, events=((3.0, "state-readonly"),), settings=BUDGETS
    )
    report, data = await run(profile, tmp_path)
    errors = store_errors(data)
    assert errors["add_usage"] > 0, errors
    assert report["latency_ms"]["overhead"]["max"] < BUSY_TIMEOUT_MS / 5, report["latency_ms"]


@needs_sandbox
async def test_a_full_disk_for_the_log_and_the_state_is_survived_and_reported(
    tmp_path: Path,
) -> None:
    """The filesystems of the log and the state are full from 2 s to 16 s: log lines and
    state writes fail. The bot says so on stderr once (no traceback per line), marks the
    gap in its log once it can write again, and writes the state it kept."""
    profile = LoadProfile(
        guilds=2,
        turns=4,
        seed=13,
        events=((2.0, "disk-full"), (16.0, "disk-freed")),
        settings=BUDGETS,
    )
    _, data = await run(profile, tmp_path)
    lines = (tmp_path / "bot.stderr").read_text().splitlines()
    stderr = [json.loads(line) for line in lines if line.startswith("{")]
    messages = Counter(line["message"] for line in stderr)
    assert messages["log records cannot be written"] == 1, stderr  # not one per record
    [recovered] = [line for line in stderr if line["message"] == "log records are written again"]
    assert recovered["context"]["records_failed"] > 0
    log = [json.loads(line)["message"] for line in (tmp_path / "bot.log").read_text().splitlines()]
    assert "log records are written again" in log  # the gap, marked in the log itself
    errors = store_errors(data)
    assert errors["add_usage"] > 0, errors
    assert "state database takes writes again; pending changes written" in log
