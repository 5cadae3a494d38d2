"""Probe a slot's ops API (directly or through HAProxy) and judge it against thresholds.

``openclaw-voice probe URL`` is what the deploy, rollback and smoke playbooks run on the
host. One *round* asks ``/health``, ``/ready``, ``/status`` and ``/metrics`` and checks
each answer: status code, the version and slot it reports (when expected), and that the
metrics parse. With ``--duration`` the rounds repeat for a watch window and the run is
judged as a whole: the share of failed requests, the p95 latency of the ops API, and
the success of the conversation turns finished meanwhile (from ``pipeline_turns_total``).
The verdict is one JSON line on stdout; exit status 0 passes, 1 fails, 2 is bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

SLOT_HEADER = "X-OpenClaw-Slot"
TURN_METRIC = "pipeline_turns_total"
TURN_SUCCESS = "completed"


@dataclass(frozen=True)
class Expectations:
    """What every round must find."""

    version: str | None = None
    slot: str | None = None
    standby: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Limits of the watch window (the spec's: errors < 1 %, p95 < 500 ms, success > 99 %)."""

    max_error_rate: float = 0.01
    max_p95_ms: float = 500.0
    min_turn_success: float = 0.99


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    slot: str | None
    seconds: float
    error: str | None = None


Fetch = Callable[[str], Answer]


def fetch(url: str, timeout: float = 5.0) -> Answer:
    """GET ``url``; a network failure is an answer with status 0 and the error named."""
    started = time.perf_counter()
    request = urllib.request.Request(url, headers={"User-Agent": "openclaw-voice-probe"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            return Answer(response.status, body, response.headers.get(SLOT_HEADER), _since(started))
    except urllib.error.HTTPError as error:
        body = error.read()
        return Answer(error.code, body, error.headers.get(SLOT_HEADER), _since(started))
    except (urllib.error.URLError, HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        return Answer(0, b"", None, _since(started), error=f"{type(error).__name__}: {reason}")


def _since(started: float) -> float:
    return time.perf_counter() - started


@dataclass
class Observations:
    """Everything the rounds saw."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rounds: int = 0
    turns_first: dict[str, float] | None = None
    turns_last: dict[str, float] | None = None

    def fail(self, problem: str) -> None:
        self.failures.append(problem)


def _json(answer: Answer) -> dict[str, Any] | None:
    try:
        value = json.loads(answer.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _turns(metrics_text: str) -> dict[str, float]:
    """``pipeline_turns_total`` by status; raises ValueError when the text does not parse."""
    turns: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == TURN_METRIC:
                status = sample.labels.get("status", "")
                turns[status] = turns.get(status, 0.0) + sample.value
    return turns


def probe_round(base_url: str, expect: Expectations, seen: Observations, get: Fetch) -> None:
    """Ask the four endpoints once, recording every problem with the endpoint named."""
    seen.rounds += 1
    for path in ("/health", "/ready", "/status", "/metrics"):
        answer = get(base_url.rstrip("/") + path)
        seen.requests += 1
        seen.latencies_ms.append(answer.seconds * 1000.0)
        problem = _judge(path, answer, expect, seen)
        if problem:
            seen.fail(f"{path}: {problem}")


def _judge(path: str, answer: Answer, expect: Expectations, seen: Observations) -> str | None:
    wanted = 503 if path == "/ready" and expect.standby else 200
    problem: str | None = None
    if answer.error is not None:
        problem = answer.error
    elif answer.status != wanted:
        detail = _json(answer)
        reason = f" ({json.dumps(detail, sort_keys=True)})" if detail else ""
        problem = f"HTTP {answer.status}, expected {wanted}{reason}"
    elif expect.slot is not None and answer.slot is not None and answer.slot != expect.slot:
        problem = f"served by slot {answer.slot}, expected {expect.slot}"
    elif path == "/metrics":
        problem = _judge_metrics(answer, seen)
    else:
        problem = _judge_json(path, _json(answer), expect)
    return problem


def _judge_metrics(answer: Answer, seen: Observations) -> str | None:
    try:
        turns = _turns(answer.body.decode())
    except (ValueError, UnicodeDecodeError) as error:
        return f"does not parse as Prometheus text: {error}"
    if seen.turns_first is None:
        seen.turns_first = turns
    seen.turns_last = turns
    return None


def _judge_json(path: str, body: dict[str, Any] | None, expect: Expectations) -> str | None:
    if body is None:
        return "answer is not a JSON object"
    if path == "/ready" and expect.standby and body.get("reasons") != ["standby"]:
        return f"a standby must be ready but for its role; reasons: {body.get('reasons')}"
    version = body.get("version")
    if path in ("/health", "/status") and expect.version not in (None, version):
        return f"version {version!r}, expected {expect.version!r}"
    return None


def p95(values: Sequence[float]) -> float:
    """The nearest-rank 95th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def verdict(seen: Observations, limits: Thresholds, *, window: bool) -> dict[str, Any]:
    """The run as one JSON-able dict; ``problems`` empty means it passed."""
    error_rate = len(seen.failures) / seen.requests if seen.requests else 1.0
    latency = p95(seen.latencies_ms)
    turns = {
        status: (seen.turns_last or {}).get(status, 0.0) - (seen.turns_first or {}).get(status, 0.0)
        for status in set(seen.turns_last or {}) | set(seen.turns_first or {})
    }
    finished = sum(turns.values())
    success = turns.get(TURN_SUCCESS, 0.0) / finished if finished else None
    problems: list[str] = []
    if window:
        if error_rate >= limits.max_error_rate:
            problems.append(f"error rate {error_rate:.2%} is not below {limits.max_error_rate:.2%}")
        if latency >= limits.max_p95_ms:
            problems.append(f"p95 latency {latency:.0f} ms is not below {limits.max_p95_ms:.0f} ms")
        if success is not None and success <= limits.min_turn_success:
            problems.append(
                f"turn success {success:.2%} is not above {limits.min_turn_success:.2%}"
            )
    elif seen.failures:
        problems.append("a probe failed")
    return {
        "passed": not problems,
        "problems": problems,
        "failures": seen.failures[:20],
        "requests": seen.requests,
        "rounds": seen.rounds,
        "error_rate": round(error_rate, 4),
        "p95_ms": round(latency, 1),
        "turns": {status: int(count) for status, count in sorted(turns.items())},
        "turn_success": None if success is None else round(success, 4),
    }


def run_probe(
    base_url: str,
    expect: Expectations,
    limits: Thresholds,
    *,
    duration: float,
    interval: float,
    get: Fetch = fetch,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One round (``duration`` 0) or rounds every ``interval`` seconds for ``duration``."""
    seen = Observations()
    deadline = clock() + duration
    while True:
        started = clock()
        probe_round(base_url, expect, seen, get)
        if clock() >= deadline:
            break
        pause(max(0.0, min(interval - (clock() - started), deadline - clock())))
    return verdict(seen, limits, window=duration > 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openclaw-voice probe",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080 (HAProxy) or a slot's")
    parser.add_argument("--expect-version", help="the version /health and /status must report")
    parser.add_argument("--expect-slot", help=f"the slot named in the {SLOT_HEADER} header")
    parser.add_argument(
        "--standby", action="store_true", help="the slot is a standby: /ready must say 503 standby"
    )
    parser.add_argument("--duration", type=float, default=0.0, help="watch window (s); 0: once")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between rounds")
    parser.add_argument("--max-error-rate", type=float, default=Thresholds.max_error_rate)
    parser.add_argument("--max-p95-ms", type=float, default=Thresholds.max_p95_ms)
    parser.add_argument("--min-turn-success", type=float, default=Thresholds.min_turn_success)
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point of ``openclaw-voice probe``: prints the verdict, returns the exit status."""
    args = _parser().parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        print(
            f"probe: URL must start with http:// or https://, found {args.url!r}", file=sys.stderr
        )
        return 2
    if args.duration < 0 or args.interval <= 0:
        print("probe: --duration must be >= 0 and --interval > 0", file=sys.stderr)
        return 2
    result = run_probe(
        args.url,
        Expectations(args.expect_version, args.expect_slot, args.standby),
        Thresholds(args.max_error_rate, args.max_p95_ms, args.min_turn_success),
        duration=args.duration,
        interval=args.interval,
    )
    print(json.dumps({"url": args.url, **result}, sort_keys=True))
    return 0 if result["passed"] else 1
