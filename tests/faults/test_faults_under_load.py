"""Faults while the real bot holds conversations (the ``tests/load`` harness, small sizes).

Each test asserts what the issue asks of every failure mode: no unhandled exception, no
guild state lost (every voice session still there, every presence still recorded), no
question answered twice, and every question heard answered, by a reply or by a spoken
apology. Run by ``tox -e faults``; about 35-60 s each.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.load.events import compiler
from tests.load.harness import run_load
from tests.load.profile import Fault, LoadProfile
from tests.load.report import write_report
from tests.load.run import verdict

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# What lost, corrupted or foreign packets may be dropped for (and nothing else).
NETWORK_DROPS = frozenset(
    {
        "transport_decrypt",
        "malformed",
        "unknown_ssrc",
        "dave_no_cryptor",
        "duplicate",
        "late",
        "overflow",
        "jump",
        "resync",
    }
)


async def run(profile: LoadProfile, out: Path) -> dict[str, Any]:
    report = write_report(await run_load(profile, out), out)
    assert verdict(report, soak=False) == [], report["errors"]
    turns, errors, state = report["turns"], report["errors"], report["state_at_end"]
    assert turns["asked"] == turns["answered"] == profile.guilds * (profile.turns or 0)
    assert turns["extra_reports"] == 0
    assert (state["sessions"], state["recorded_presence"]) == (profile.guilds, profile.guilds)
    assert errors["unhandled_exceptions"] == []
    assert errors["log_errors"] == []
    assert errors["fake_errors"] == []
    assert errors["bot_exit_code"] == 0
    return report


async def test_provider_errors_timeouts_and_429s_are_retried_or_apologised_for(
    tmp_path: Path,
) -> None:
    profile = LoadProfile(
        guilds=2,
        turns=5,
        seed=4,
        faults=(
            Fault("stt", 0.2, "unavailable"),  # 503 on every attempt: the turn fails, 4003
            Fault("stt", 0.3, "timeout", persistent=False),  # one attempt hangs: retried
            Fault("agent", 0.25, "rate_limited"),  # a 429 storm for that turn: 7002
            Fault("agent", 0.3, "unavailable", persistent=False),
            Fault("tts", 0.5, "unavailable", persistent=False),
        ),
        settings={"STT_TIMEOUT_SECONDS": "1"},
    )
    report = await run(profile, tmp_path)
    errors = report["errors"]
    assert errors["provider_attempts_by_code"] == errors["injected_by_code"]
    assert len(errors["injected_by_code"]) >= 3, errors["injected_by_code"]
    assert "4001" in errors["injected_by_code"]  # a hung attempt was cut by its timeout
    assert errors["turns_by_code"] == errors["expected_turns_by_code"] != {}
    assert errors["pipeline_error_total"] == errors["turns_by_code"]
    failed = report["turns"]["by_status"].get("error", 0)
    assert failed == sum(errors["turns_by_code"].values())
    assert report["latency_ms"]["heard_e2e"]["count"] == report["turns"]["asked"]  # apologies too


async def test_providers_down_for_a_while_are_benched_and_their_backups_answer(
    tmp_path: Path,
) -> None:
    profile = LoadProfile(
        guilds=2,
        turns=6,
        seed=12,
        events=((1.0, "stt-down"), (1.0, "agent-down"), (24.0, "stt-up"), (24.0, "agent-up")),
        settings={"PROVIDER_COOLDOWN_SECONDS": "5"},
    )
    report = await run(profile, tmp_path)
    errors = report["errors"]
    assert report["turns"]["by_status"] == {"completed": 12}  # nobody noticed the outage
    served = errors["provider_served"]
    assert served["load-stt-backup"] >= 3, served
    assert served["load-agent-backup"] >= 3, served
    assert served["load-stt"] >= 1, served  # back in use once the outage ended
    assert served["load-agent"] >= 1, served
    # Benched after consecutive failures, then probed once per cool-down: far fewer
    # failed attempts than two per turn during the outage.
    benched = [
        json.loads(line)["context"]["stage"]
        for line in (tmp_path / "bot.log").read_text().splitlines()
        if "provider benched after consecutive failures" in line
    ]
    assert {"STT", "AGENT"} <= set(benched), benched
    in_outage = served["load-stt-backup"]
    assert errors["injected_by_code"]["4003"] < 2 * in_outage, errors


async def test_a_lossy_network_and_a_flood_of_bad_packets_do_not_stop_the_conversation(
    tmp_path: Path,
) -> None:
    profile = LoadProfile(
        guilds=2,
        turns=3,
        seed=6,
        packets={
            "loss": 10,
            "reorder": 10,
            "jitter": 0.03,
            "duplicate": 5,
            "malformed": 10,
            "truncated": 3,
            "unknown_ssrc": 3,
            "rtcp": 5,
        },
    )
    report = await run(profile, tmp_path)
    assert report["turns"]["by_status"] == {"completed": 6}
    frames = report["frames"]
    assert set(frames["inbound_dropped_by_reason"]) <= NETWORK_DROPS, frames
    assert frames["inbound_dropped_by_reason"].get("transport_decrypt", 0) > 0  # malformed
    assert sum(frames["inbound_concealed"].values()) > 0  # losses concealed (FEC, PLC)
    assert frames["outbound_lost"] == 0


async def test_gateway_resumes_reconnects_and_a_new_identify_leave_voice_untouched(
    tmp_path: Path,
) -> None:
    profile = LoadProfile(
        guilds=2,
        turns=4,
        seed=7,
        events=((4.0, "gateway-resume"), (12.0, "gateway-reconnect"), (20.0, "gateway-drop")),
        settings={"VOICE_CONNECT_TIMEOUT_SECONDS": "5"},
    )
    report = await run(profile, tmp_path)
    assert [event["action"] for event in report["events"]] == [
        "gateway-resume",
        "gateway-reconnect",
        "gateway-drop",
    ]
    assert report["turns"]["by_status"] == {"completed": 8}
    assert report["gateway"]["resumed"] == 2  # after the drop and after op 7
    assert report["gateway"]["identify"] == 2  # the forgotten session: a new IDENTIFY
    assert report["gateway"]["disconnects"] == 3  # discord_gateway_disconnect_total
    assert report["frames"]["inbound_defect_drops"] == 0
    # discord.py got its voice connections back (it clears them on READY): it routes the
    # bot's voice state to them, so leaving at the end was confirmed, not timed out.
    assert report["state_at_end"]["discord_voice_clients"] == 2
    assert report["after_exit"]["in_voice"] == []
    assert report["after_exit"]["presence"] == sorted(report["guild_ids"])


async def test_voice_connection_closes_are_rejoined_between_turns(tmp_path: Path) -> None:
    """4006 and 4015 are rejoined at once (the two closes come back to back, the second
    while the first rejoin is finishing); after 4021 (rate limited) the channel is tried
    again once VOICE_REJOIN_RETRY_SECONDS have passed."""
    profile = LoadProfile(
        guilds=2,
        turns=4,
        seed=9,
        events=((3.0, "voice-close-4006"), (10.0, "voice-close-4015"), (12.0, "voice-close-4021")),
        settings={"VOICE_REJOIN_RETRY_SECONDS": "1"},
    )
    report = await run(profile, tmp_path)
    events = report["events"]
    assert [(e["action"], e["code"], e["new_connection"]) for e in events] == [
        ("voice-close-4006", 4006, True),
        ("voice-close-4015", 4015, True),
        ("voice-close-4021", 4021, True),
    ]
    assert events[2]["rejoin_seconds"] >= 1.0  # not at once: after the retry delay
    assert report["turns"]["by_status"] == {"completed": 8}
    assert report["state_at_end"]["discord_voice_clients"] == 2
    assert report["voice_disconnects_by_reason"] == {"lost": 3}  # each rejoined once


@pytest.mark.parametrize("sigterm", ["sigterm", "sigterm-mid-question"])
async def test_sigterm_mid_reply_or_question_answers_it_then_leaves_keeping_presence(
    tmp_path: Path, sigterm: str
) -> None:
    """SIGTERM while an answer is heard, or while a question is being asked: the drain
    answers it (speech begun before the signal is still answered), then the bot leaves."""
    profile = LoadProfile(
        guilds=2,
        turns=6,
        seed=10,
        events=((4.0, sigterm),),
        settings={"DRAIN_SECONDS": "20"},
    )
    report = write_report(await run_load(profile, tmp_path), tmp_path)
    errors, turns = report["errors"], report["turns"]
    assert report["failure"] is None
    assert [event["action"] for event in report["events"]] == [sigterm]
    # The answer being heard, or the question being asked, when SIGTERM came was finished
    # and answered, and so was every question asked; nobody asked again after it.
    assert turns["unanswered"] == 0, report["turn_log"]
    assert turns["asked"] == turns["answered"] < profile.guilds * 6
    assert turns["by_status"] == {"completed": turns["asked"]}
    assert turns["extra_reports"] == 0
    assert errors["bot_exit_code"] == 0
    assert errors["unhandled_exceptions"] == errors["log_errors"] == errors["fake_errors"] == []
    # It left voice, and kept the presence for the next process (a restart rejoins).
    assert report["after_exit"]["in_voice"] == []
    assert report["after_exit"]["presence"] == sorted(report["guild_ids"])


@pytest.mark.skipif(compiler() is None, reason="needs a C compiler (scripts/system-packages)")
async def test_wall_clock_jumps_change_nothing(tmp_path: Path) -> None:
    profile = LoadProfile(
        guilds=2,
        turns=4,
        seed=11,
        # each jump followed by reconnects that check TLS certificates on the new clock
        events=(
            (3.0, "clock-forward"),
            (5.0, "gateway-resume"),
            (9.0, "clock-back"),
            (11.0, "clock-back"),
            (13.0, "gateway-reconnect"),
        ),
    )
    report = await run(profile, tmp_path)
    offsets = [e.get("offset_seconds") for e in report["events"] if e["action"].startswith("clock")]
    assert offsets == [3600, 0, -3600]
    # The bot's clock did jump: its log says it reconnected an hour ahead, then behind.
    reconnects = [
        dt.datetime.fromisoformat(record["timestamp"]) - dt.datetime.now(dt.UTC)
        for record in map(json.loads, (tmp_path / "bot.log").read_text().splitlines())
        if record["message"] == "disconnected from Discord; reconnecting"
    ]
    hours = [round(shift.total_seconds() / 3600) for shift in reconnects]
    assert (hours[0], set(hours[1:])) == (1, {-1}), reconnects
    assert report["turns"]["by_status"] == {"completed": 8}
    assert report["gateway"]["identify"] == 1
    assert report["frames"]["inbound_defect_drops"] == 0
