"""The README documents every configuration variable, generated from the same table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from openclaw_voice.config import VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_is_current() -> None:
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "scripts" / "render_config_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text()
    for variable in VARIABLES:
        assert f"| `{variable.name}`" in readme
