"""Bad input stops site.yml early, with a message saying what to fix, before any change.

Runs against the clean hosts (before test_site.py provisions them): each failing run must
report changed=0 and leave no trace of the bot on the hosts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import Ansible, Lab, Release, site_vars


def _assert_untouched(fleet: Lab) -> None:
    for host in fleet.hosts:
        probe = fleet.ssh(
            host, "test -e /etc/openclaw-voice || test -e /opt/openclaw-voice", check=False
        )
        assert probe.returncode == 1, f"{host.name} was changed by a failed preflight"


def test_unknown_environment(ansible: Ansible, staging_inventory: Path, release: Release) -> None:
    result = ansible.playbook(
        "site.yml", inventory=staging_inventory, extra_vars=site_vars(release, env="qa")
    )
    assert result.returncode != 0
    assert "Unknown or empty environment qa" in result.output
    assert "-e env=<staging|production|local>" in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"vault_tts_api_key": ""},
            "Secret TTS_API_KEY is missing for env=staging",
            id="missing-vault-secret",
        ),
        pytest.param(
            {"vault_discord_token": "CHANGE-ME-discord-bot-token"},
            "Secret DISCORD_TOKEN is still the CHANGE-ME placeholder",
            id="placeholder-vault-secret",
        ),
        pytest.param(
            {"openclaw_voice_version": "9.9.9"},
            "The release asks for version 9.9.9 but",
            id="wheel-version-mismatch",
        ),
        pytest.param(
            {"openclaw_voice_min_free_mb": 10**9},
            "the release needs 1000000000 MiB",
            id="not-enough-disk",
        ),
    ],
)
def test_bad_input_fails_before_any_change(
    ansible: Ansible,
    fleet: Lab,
    *,
    staging_inventory: Path,
    release: Release,
    overrides: dict[str, object],
    message: str,
) -> None:
    result = ansible.playbook(
        "site.yml", inventory=staging_inventory, extra_vars=site_vars(release, **overrides)
    )
    assert result.returncode != 0
    assert message in result.output, result.output[-4000:]
    for host in fleet.hosts:
        assert result.recap[host.name]["changed"] == 0, result.recap
    _assert_untouched(fleet)


def test_host_without_shard_ids(ansible: Ansible, fleet: Lab, release: Release) -> None:
    first, second = fleet.hosts
    inventory = fleet.inventory(
        Path(fleet.workdir) / "unsharded.json",
        group="staging",
        host_vars={
            first.name: {"shard_ids": [0], "shard_count": 2},
            second.name: {"shard_count": 2},
        },
    )
    result = ansible.playbook("site.yml", inventory=inventory, extra_vars=site_vars(release))
    assert result.returncode != 0
    assert f"Sharding is on (shard_count=2) but host {second.name} has no shard_ids" in (
        result.output
    )
    _assert_untouched(fleet)
