"""The role's release pruning (tasks/prune.yml), run by real Ansible on this machine
against a releases directory in the test's own: the slots' releases stay, and of the rest
only the newest ``openclaw_voice_keep_releases``. (deploy.yml runs it after a successful
deploy; the blue-green lab checks that the slots' releases survive a deploy.)"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ANSIBLE_DIR, local_ansible_env, run

PRUNE = ANSIBLE_DIR / "roles" / "openclaw_voice" / "tasks" / "prune.yml"
VERSIONS = ["1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6"]  # oldest first
HELD = {"blue": "1.0.3", "green": "1.0.5"}


def prune(tmp_path: Path, keep: int, slots: dict[str, str]) -> set[str]:
    """Unpack VERSIONS (each a minute newer than the one before), run prune.yml, and
    return the releases left."""
    ansible = Path(sys.executable).parent / "ansible-playbook"
    if not ansible.exists():
        pytest.skip("needs ansible-playbook next to this Python (tox -e deploy)")
    install_root = tmp_path / "opt" / "openclaw-voice"
    releases = install_root / "releases"
    for age, version in enumerate(reversed(VERSIONS)):
        (releases / version / "wheelhouse").mkdir(parents=True)
        stamp = 1_800_000_000 - 60 * age
        os.utime(releases / version, (stamp, stamp))
    playbook = tmp_path / "prune.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_tasks: {PRUNE}\n"
    )
    extra = {
        "openclaw_voice_install_root": str(install_root),
        "openclaw_voice_keep_releases": keep,
        "openclaw_voice_host_state": {"active_slot": "blue", "slots": slots},
    }
    run(
        [ansible, "-c", "local", "-i", "localhost,", "-e", json.dumps(extra), playbook],
        env=local_ansible_env(tmp_path),
    )
    left = {path.name for path in releases.iterdir()}
    shutil.rmtree(install_root)
    return left


def test_the_slots_releases_and_the_newest_others_are_kept(tmp_path: Path) -> None:
    assert prune(tmp_path, 2, HELD) == {"1.0.3", "1.0.5", "1.0.6", "1.0.4"}


def test_keeping_none_leaves_only_the_slots_releases(tmp_path: Path) -> None:
    assert prune(tmp_path, 0, HELD) == {"1.0.3", "1.0.5"}


def test_a_host_without_deploy_state_keeps_the_newest(tmp_path: Path) -> None:
    assert prune(tmp_path, 1, {}) == {"1.0.6"}
