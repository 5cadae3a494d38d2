"""Fixtures for the deploy tests: two real systemd hosts (see nspawn.py), the release
built by scripts/build-release plus the deploy stub, and the repository's playbooks run
against the hosts with a test inventory.

Needs root and the Debian packages ``scripts/deploy-test-packages`` installs, and
Ansible next to this Python (``tox -e deploy``); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.nspawn import Host, Lab, down, missing_prerequisites, run, up, wait_for
from tests.deploy.release import STUB_COMMAND, STUB_DISTRIBUTION, Release, build

__all__ = ["Host", "Lab", "Release", "run", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
HOSTS = 2


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two booted Debian hosts with systemd as PID 1, reachable as root over ssh."""
    reason = missing_prerequisites()
    if (
        reason is None
        and shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None
    ):
        reason = "ansible-playbook is not installed next to this Python (tox -e deploy)"
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("fleet")
    names = [f"ocv{os.getpid() % 100000}h{index}" for index in range(1, HOSTS + 1)]
    lab = up(names, workdir)
    try:
        yield lab
    finally:
        down(lab)


# --- release ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """scripts/build-release output plus the deploy stub wheel, checksums redone."""
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
    """Runs the repository's playbooks against the fleet with a test inventory."""

    fleet: Lab
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
            ",".join(["localhost", *(host.name for host in self.fleet.hosts)]),
        ]
        if extra_vars is not None:
            vars_file = self.workdir / f"extra-vars-{time.monotonic_ns()}.json"
            vars_file.write_text(json.dumps(extra_vars))
            argv += ["-e", f"@{vars_file}"]
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


@pytest.fixture(scope="session")
def ansible(fleet: Lab) -> Ansible:
    workdir = Path(fleet.workdir) / "ansible"
    workdir.mkdir(exist_ok=True)
    return Ansible(fleet=fleet, workdir=workdir)


# Staging-shaped settings for the test hosts: two shards, one per host; placeholder-free
# fake secrets; the release just built; both slots installed; the stub as ExecStart.
TEST_SECRETS = {
    "vault_discord_token": "deploy-test-discord-token",
    "vault_stt_api_key": "deploy-test-stt-key",
    "vault_tts_api_key": "deploy-test-tts-key",
    "vault_openclaw_gateway_token": "deploy-test-gateway-token",
    "vault_ops_admin_token": "deploy-test-ops-admin-token",
}


def site_vars(release: Release, **overrides: object) -> dict[str, object]:
    return {
        "env": "staging",
        **TEST_SECRETS,
        "openclaw_voice_release_dir": str(release.directory),
        "openclaw_voice_install_slots": ["blue", "green"],
        "openclaw_voice_command": STUB_COMMAND,
        "openclaw_voice_extra_packages": [STUB_DISTRIBUTION],
        **overrides,
    }


@pytest.fixture(scope="session")
def staging_inventory(fleet: Lab) -> Path:
    shards = {
        host.name: {"shard_ids": [index], "shard_count": len(fleet.hosts)}
        for index, host in enumerate(fleet.hosts)
    }
    return fleet.inventory(Path(fleet.workdir) / "staging.json", group="staging", host_vars=shards)
