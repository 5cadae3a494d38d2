"""Audit a hash-locked requirements file with pip-audit.

pip-audit needs a vulnerability service on the network. Where none is reachable (the
offline development machines) it cannot audit anything; this wrapper says so plainly
instead of passing silently, and fails when AUDIT_REQUIRED=1 (set in GitHub Actions).
Any vulnerability found always fails.
"""

from __future__ import annotations

import os
import subprocess
import sys

UNREACHABLE_MARKERS = ("could not be audited", "ConnectionError", "Failed to resolve")


def main(lock_file: str) -> int:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--strict",
        "--require-hashes",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "-r",
        lock_file,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    output = result.stdout + result.stderr
    if result.returncode == 0:
        sys.stdout.write(result.stdout)
        return 0
    if "Found " in output and " known vulnerabilit" in output:
        sys.stdout.write(output)
        return result.returncode
    if any(marker in output for marker in UNREACHABLE_MARKERS):
        sys.stdout.write(
            "pip-audit: no vulnerability service is reachable from this machine; "
            "the dependency audit was NOT performed.\n"
        )
        return 1 if os.environ.get("AUDIT_REQUIRED") == "1" else 0
    sys.stdout.write(output)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
