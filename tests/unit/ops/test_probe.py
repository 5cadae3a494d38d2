"""`openclaw-voice probe`: the checks of one round, the watch window's verdict, the command."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openclaw_voice import cli
from openclaw_voice.ops.probe import Answer, Expectations, Thresholds, p95, run_probe

METRICS = """# HELP pipeline_turns_total Turns.
# TYPE pipeline_turns_total counter
pipeline_turns_total{{status="completed"}} {completed}
pipeline_turns_total{{status="error"}} {errors}
"""


class FakeSlot:
    """Canned answers of a slot's ops API, changeable per test; counts the metrics scrapes."""

    def __init__(self, *, version: str = "1.0", slot: str = "green", standby: bool = False) -> None:
        self.version = version
        self.slot = slot
        self.standby = standby
        self.reasons = ["standby"] if standby else []
        self.completed = 0
        self.errors = 0
        self.turns_per_scrape = (0, 0)
        self.seconds = 0.01
        self.broken: set[str] = set()

    def get(self, url: str) -> Answer:
        path = url.split("8080", 1)[1]
        if path in self.broken:
            return Answer(0, b"", None, self.seconds, error="ConnectionRefusedError: refused")
        if path == "/metrics":
            self.completed += self.turns_per_scrape[0]
            self.errors += self.turns_per_scrape[1]
            body = METRICS.format(completed=self.completed, errors=self.errors).encode()
            return Answer(200, body, self.slot, self.seconds)
        if path == "/ready":
            status = 503 if self.reasons else 200
            body = json.dumps({"ready": not self.reasons, "reasons": self.reasons}).encode()
            return Answer(status, body, self.slot, self.seconds)
        return Answer(200, json.dumps({"version": self.version}).encode(), self.slot, self.seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def probe(slot: FakeSlot, expect: Expectations, duration: float = 0.0) -> dict[str, object]:
    clock = Clock()
    return run_probe(
        "http://127.0.0.1:8080",
        expect,
        Thresholds(),
        duration=duration,
        interval=0.5,
        get=slot.get,
        clock=clock,
        pause=clock.pause,
    )


def test_one_round_passes_when_every_endpoint_answers_as_expected() -> None:
    result = probe(FakeSlot(), Expectations(version="1.0", slot="green"))
    assert result["passed"] is True
    assert result["requests"] == 4
    assert result["failures"] == []


@pytest.mark.parametrize(
    ("change", "expect", "failure"),
    [
        ({"version": "0.9"}, Expectations(version="1.0"), "/health: version '0.9', expected '1.0'"),
        ({"slot": "blue"}, Expectations(slot="green"), "/health: served by slot blue, expected"),
        ({"reasons": ["discord not connected"]}, Expectations(), "/ready: HTTP 503, expected 200"),
        (
            {"reasons": ["standby", "discord not connected"]},
            Expectations(standby=True),
            "/ready: a standby must be ready but for its role",
        ),
        ({"broken": {"/status"}}, Expectations(), "/status: ConnectionRefusedError"),
    ],
)
def test_a_wrong_answer_fails_the_round_naming_the_endpoint(
    change: dict[str, object], expect: Expectations, failure: str
) -> None:
    slot = FakeSlot()
    for name, value in change.items():
        setattr(slot, name, value)
    result = probe(slot, expect)
    assert result["passed"] is False
    failures = result["failures"]
    assert isinstance(failures, list)
    assert any(str(item).startswith(failure) for item in failures), failures


def test_a_standby_passes_with_standby_as_its_only_reason() -> None:
    assert probe(FakeSlot(standby=True), Expectations(standby=True))["passed"] is True
    # ...and an active slot is not a standby.
    assert probe(FakeSlot(), Expectations(standby=True))["passed"] is False


def test_unparseable_metrics_fail() -> None:
    slot = FakeSlot()
    original = slot.get

    def get(url: str) -> Answer:
        answer = original(url)
        if url.endswith("/metrics"):
            return Answer(200, b"pipeline_turns_total{status=", answer.slot, answer.seconds)
        return answer

    slot.get = get  # type: ignore[method-assign]
    result = probe(slot, Expectations())
    assert any("does not parse as Prometheus text" in str(f) for f in result["failures"])  # type: ignore[attr-defined]


def test_the_window_repeats_rounds_and_judges_the_thresholds() -> None:
    slot = FakeSlot()
    slot.turns_per_scrape = (10, 0)
    good = probe(slot, Expectations(), duration=10.0)
    assert good["passed"] is True
    assert good["rounds"] == 21  # every 0.5 s for 10 s, both ends included
    assert good["turns"] == {"completed": 200, "error": 0}
    assert good["turn_success"] == 1.0

    slot = FakeSlot()
    slot.turns_per_scrape = (9, 1)
    bad_turns = probe(slot, Expectations(), duration=10.0)
    assert bad_turns["passed"] is False
    assert bad_turns["problems"] == ["turn success 90.00% is not above 99.00%"]

    slot = FakeSlot()
    slot.seconds = 0.6
    slow = probe(slot, Expectations(), duration=10.0)
    assert slow["problems"] == ["p95 latency 600 ms is not below 500 ms"]


def test_one_failed_request_in_a_hundred_breaks_the_error_threshold() -> None:
    slot = FakeSlot()
    calls = 0
    original = slot.get

    def flaky(url: str) -> Answer:
        nonlocal calls
        calls += 1
        if calls == 7:
            return Answer(502, b"", None, 0.01)
        return original(url)

    slot.get = flaky  # type: ignore[method-assign]
    result = probe(slot, Expectations(), duration=12.0)  # 25 rounds, 100 requests
    assert result["requests"] == 100
    assert result["error_rate"] == 0.01
    assert result["problems"] == ["error rate 1.00% is not below 1.00%"]


def test_p95_is_the_nearest_rank() -> None:
    assert p95([]) == 0.0
    assert p95([float(value) for value in range(1, 101)]) == 95.0
    assert p95([3.0]) == 3.0


# --- the command, against a real HTTP server --------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    slot = FakeSlot(version="2.0", slot="blue")

    def do_GET(self) -> None:
        answer = self.slot.get("http://127.0.0.1:8080" + self.path)
        self.send_response(answer.status)
        if answer.slot:
            self.send_header("X-OpenClaw-Slot", answer.slot)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_command_prints_one_json_verdict(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["probe", server, "--expect-version", "2.0", "--expect-slot", "blue"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["passed"] is True
    assert verdict["url"] == server

    assert cli.main(["probe", server, "--expect-version", "3.0"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["failures"][0] == "/health: version '2.0', expected '3.0'"


def test_the_command_names_a_refused_connection(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    assert cli.main(["probe", "http://127.0.0.1:9"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert "Connection refused" in verdict["failures"][0] or "Errno 111" in verdict["failures"][0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "127.0.0.1:8080"], "URL must start with http:// or https://"),
        (["probe", "http://127.0.0.1:8080", "--duration", "-1"], "--duration must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
