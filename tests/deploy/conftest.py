"""Shared pieces of the deploy tests: the release built by scripts/build-release, and the
repository's playbooks run against nspawn hosts (nspawn.py) with a test inventory. The
hosts themselves are test_blue_green.py's lab (one lab for the whole deploy suite).

Needs root and the Debian packages ``scripts/deploy-test-packages`` installs, and
Ansible next to this Python (``tox -e deploy``); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.nspawn import Host, Lab, run, wait_for
from tests.deploy.release import Release, build

__all__ = ["Host", "Lab", "Release", "run", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"


def local_ansible_env(workdir: Path) -> dict[str, str]:
    """The environment for Ansible run on this machine (``-c local``), its own files in
    ``workdir``."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }


# --- release ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """scripts/build-release output (plus the deploy stub wheel Molecule uses, unused here)."""
    return build(tmp_path_factory.mktemp("release"))


# --- ansible ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]
    seconds: float


RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP_LINE.match(line.strip()) if in_recap else None
        if match:
            recap[match.group(1)] = {
                key: int(value)
                for key, value in (item.split("=") for item in match.group(2).split())
            }
    return recap


@dataclass
class Ansible:
    """Runs the repository's playbooks against a lab's hosts with a test inventory."""

    lab: Lab
    workdir: Path

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.workdir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.workdir / "cp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            # Per-task times in the output (where a deploy's seconds go).
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            "PROFILE_TASKS_SORT_ORDER": "none",
            "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }

    def playbook(
        self,
        playbook: str,
        *args: str,
        inventory: Path,
        extra_vars: dict[str, object] | None = None,
        timeout: float = 600.0,
    ) -> PlaybookRun:
        argv = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(ANSIBLE_DIR / "inventory"),
            "-i",
            str(inventory),
            "--limit",
            ",".join(["localhost", *(host.name for host in self.lab.hosts)]),
        ]
        if extra_vars is not None:
            # A file of its own per run: runs may overlap (the preflight cases do).
            handle, name = tempfile.mkstemp(prefix="extra-vars-", suffix=".json", dir=self.workdir)
            with os.fdopen(handle, "w") as vars_file:
                json.dump(extra_vars, vars_file)
            argv += ["-e", f"@{name}"]
        argv += [*args, playbook]
        started = time.monotonic()
        result = run(argv, check=False, timeout=timeout, env=self.environment(), cwd=ANSIBLE_DIR)
        output = result.stdout + result.stderr
        return PlaybookRun(
            returncode=result.returncode,
            output=output,
            recap=parse_recap(result.stdout),
            seconds=time.monotonic() - started,
        )


# Placeholder-free fake secrets for the staging-shaped test inventory.
TEST_SECRETS = {
    "vault_discord_token": "deploy-test-discord-token",
    "vault_stt_api_key": "deploy-test-stt-key",
    "vault_tts_api_key": "deploy-test-tts-key",
    "vault_openclaw_gateway_token": "deploy-test-gateway-token",
    "vault_ops_admin_token": "deploy-test-ops-admin-token",
}
