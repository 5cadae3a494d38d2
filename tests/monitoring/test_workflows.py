"""The GitHub workflows: pinned actions, least privilege, the jobs the issue asks for, and
only tox environments and scripts that exist (actionlint itself runs in `tox -e workflows`)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.support import REPO, load_yaml

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
RELEASE = WORKFLOWS / "release.yml"

# Called by release.yml, written by the "Blue-green deploy" issue.
LATER_SCRIPTS = {"scripts/deploy.sh", "scripts/smoke-test.sh", "scripts/rollback.sh"}

_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")
_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")
_VERSION_COMMENT = re.compile(r"^\s+#\s+v\d+(?:\.\d+)*\s*$")
_TOX_ENV = re.compile(r"\btox\b[^\n]*?-e\s+\"?(?P<env>[\w${}. -]+?)\"?(?:\s|$)")
_SCRIPT = re.compile(r"\bscripts/[\w.-]+")


def workflow(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = load_yaml(path)
    # YAML 1.1 reads the bare key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def all_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def run_scripts(document: dict[str, Any]) -> str:
    return "\n".join(
        step.get("run", "") for job in document["jobs"].values() for step in job.get("steps", [])
    )


def tox_envs() -> set[str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "tox.ini")
    return {section.removeprefix("testenv:") for section in parser.sections()}


@pytest.mark.parametrize("path", all_workflows(), ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _USES.match(line)
        if match is None:
            continue
        ref = match["ref"]
        if ref.startswith("./"):
            continue  # a workflow of this repository
        assert _PINNED.match(ref), f"{path.name}:{number}: {ref} is not pinned to a full SHA"
        assert _VERSION_COMMENT.match(match["comment"]), f"{path.name}:{number}: no version"


@pytest.mark.parametrize("path", all_workflows(), ids=lambda path: path.name)
def test_least_privilege_and_concurrency(path: Path) -> None:
    document = workflow(path)
    assert document["permissions"] == {"contents": "read"}
    assert "group" in document["concurrency"]
    for name, job in document["jobs"].items():
        extra = job.get("permissions", {})
        assert set(extra.values()) <= {"read", "write"}, name
        if "write" in extra.values():
            assert (path, name) == (RELEASE, "github-release"), f"{path.name}: {name} writes"


def test_ci_runs_on_pull_requests_and_main_and_cancels_superseded_runs() -> None:
    document = workflow(CI)
    assert "pull_request" in document["on"]
    assert document["on"]["push"]["branches"] == ["main"]
    assert document["concurrency"]["cancel-in-progress"] is True


def test_ci_has_the_jobs_and_python_matrix() -> None:
    jobs = workflow(CI)["jobs"]
    assert set(jobs) == {
        "lint",
        "type",
        "test",
        "security",
        "build",
        "deploy-test",
        "load",
        "monitoring",
    }
    pythons = [entry["python"] for entry in jobs["test"]["strategy"]["matrix"]["include"]]
    assert pythons == ["3.11", "3.12", "3.13"]
    for job in jobs.values():
        assert job["timeout-minutes"] <= 60


def test_workflows_call_existing_tox_environments_and_scripts() -> None:
    envs = tox_envs()
    for path in all_workflows():
        text = run_scripts(workflow(path))
        for match in _TOX_ENV.finditer(text):
            env = match["env"].strip()
            if "${{" in env:  # the matrix' py311/py312/py313: tox's implicit pyXY envs
                continue
            assert env in envs, f"{path.name} calls tox -e {env}, not in tox.ini"
        for script in set(_SCRIPT.findall(text)):
            assert (REPO / script).is_file() or script in LATER_SCRIPTS, f"{path.name}: {script}"


def test_release_deploys_staging_on_merge_and_production_by_hand() -> None:
    document = workflow(RELEASE)
    triggers = document["on"]
    assert triggers["workflow_run"]["workflows"] == ["CI"]
    assert triggers["workflow_run"]["branches"] == ["main"]
    choice = triggers["workflow_dispatch"]["inputs"]["environment"]
    assert choice["options"] == ["staging", "production"]
    deploy = document["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "${{ inputs.environment || 'staging' }}"
    text = run_scripts(document)
    for script in ("scripts/deploy.sh", "scripts/smoke-test.sh", "scripts/rollback.sh"):
        assert script in text
    [rollback] = [step for step in deploy["steps"] if "rollback.sh" in step.get("run", "")]
    assert "failure()" in rollback["if"]
    # Secrets reach the deploy only through step environments, never inline in a script.
    assert "secrets." not in text
