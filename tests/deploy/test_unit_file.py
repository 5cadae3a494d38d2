"""The rendered template unit passes `systemd-analyze verify` with no output at all and
scores at most 2.5 ("OK") in `systemd-analyze security --offline=true`."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ANSIBLE_DIR, local_ansible_env, run

ROLE = ANSIBLE_DIR / "roles" / "openclaw_voice"
UNIT = "openclaw-voice@blue.service"
MAX_EXPOSURE = 2.5


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit rendered by Ansible with the role's defaults, as instance `blue`.

    Only the install root is moved into the test directory, where a stub executable
    stands in for the slot's venv, so that verify can resolve ExecStart.
    """
    ansible = Path(sys.executable).parent / "ansible"
    if not ansible.exists() or shutil.which("systemd-analyze") is None:
        pytest.skip("needs ansible next to this Python and systemd-analyze (tox -e deploy)")
    root = tmp_path_factory.mktemp("unit-root")
    install_root = root / "opt" / "openclaw-voice"
    unit = root / UNIT
    env = local_ansible_env(root.parent)
    run(
        [
            ansible,
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={ROLE / 'templates' / 'openclaw-voice@.service.j2'} dest={unit} mode=0644",
            "-e",
            f"@{ROLE / 'defaults' / 'main.yml'}",
            "-e",
            f"openclaw_voice_install_root={install_root}",
        ],
        env=env,
    )
    executable = install_root / "blue" / "venv" / "bin" / "openclaw-voice"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\nexit 0\n")
    executable.chmod(0o755)
    return unit


def test_verify_prints_nothing(unit: Path) -> None:
    result = run(["systemd-analyze", "verify", unit], check=False, timeout=60)
    assert result.returncode == 0
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


def test_security_exposure_is_ok(unit: Path) -> None:
    result = run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            "--no-pager",
            unit,
        ],
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security: {exposure} {match.group(2)}")
    assert exposure <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
