"""The soak's flatness check (``tests.load.report.stability``) on made-up samples: file
descriptors that leak fail it; one that a single sample caught open for a moment does not."""

from __future__ import annotations

from typing import Any

from tests.load.harness import RunData
from tests.load.profile import LoadProfile
from tests.load.report import stability

SECONDS = 120


def fds_stability(fds_at: dict[int, int]) -> dict[str, Any]:
    """Stability of a 2-minute run with 23 open fds, except at the seconds in ``fds_at``."""
    data = RunData(
        profile=LoadProfile(guilds=1),
        started="",
        cores=2,
        phases={"spawned": 0.0, "conversation": 0.0, "conversation_end": float(SECONDS)},
    )
    proc = [
        {"t": float(t), "rss_mib": 150.0, "threads": 12, "fds": fds_at.get(t, 23)}
        for t in range(SECONDS + 1)
    ]
    bot = [{"t": float(t), "tasks": 20} for t in range(SECONDS + 1)]
    return stability(data, proc, bot, sessions=1)


def test_a_transient_fd_peak_is_not_growth() -> None:
    result = fds_stability({110: 26})
    assert result["growth"]["fds"] == 0
    assert result["passed"] is True


def test_leaked_fds_are_growth() -> None:
    result = fds_stability({t: 26 for t in range(60, SECONDS + 1)})
    assert result["growth"]["fds"] == 3
    assert result["flat"]["fds"] is False
    assert result["passed"] is False
