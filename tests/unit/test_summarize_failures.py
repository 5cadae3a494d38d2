"""scripts/summarize_failures.py names each failed test and its assertion, from a real
pytest JUnit file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARIZE = ROOT / "scripts" / "summarize_failures.py"

FAILING_TESTS = """
def test_passes():
    assert True

def test_compares():
    answered = {"completed": 7}
    assert answered == {"completed": 8}

def test_raises():
    raise RuntimeError("the fake went away")
"""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script and pytest
        [sys.executable, *map(str, args)], capture_output=True, text=True, check=False
    )


def test_failed_tests_are_named_with_their_assertion_and_where_they_failed(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_sample.py").write_text(FAILING_TESTS)
    env_dir = tmp_path / "faults"
    env_dir.mkdir()
    junit = env_dir / "junit.xml"
    pytest_run = run(
        "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}",
        f"--rootdir={tmp_path}", tmp_path / "test_sample.py",
    )  # fmt: skip
    assert pytest_run.returncode == 1, pytest_run.stdout

    summary = run(SUMMARIZE, junit, tmp_path / "missing" / "junit.xml")

    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0] == "==== faults: 2 failed ===="
    assert lines[1] == "FAILURE test_sample::test_compares"
    assert "    E         {'completed': 7} != {'completed': 8}" in lines
    assert any(line.endswith("test_sample.py:7: AssertionError") for line in lines)
    assert "FAILURE test_sample::test_raises" in lines
    assert any(line.endswith("RuntimeError: the fake went away") for line in lines)
    assert "test_passes" not in summary.stdout
    assert lines[-3] == "==== missing: 1 failed ===="  # an env that left no readable file
    assert lines[-1].startswith("    unreadable JUnit file: [Errno 2] No such file")


def test_nothing_is_printed_for_a_run_without_failures(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    junit = tmp_path / "junit.xml"
    run("-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", tmp_path)

    assert run(SUMMARIZE, junit).stdout == ""
