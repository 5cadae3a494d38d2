"""Render the README's configuration table from config.VARIABLES (``--check`` to verify)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from openclaw_voice.config import ENVIRONMENTS, VARIABLES, Variable

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"


def _default(variable: Variable) -> str:
    default = variable.default
    if default is None:
        return "—"
    if isinstance(default, Mapping):
        text = ", ".join(f"{env}: `{value}`" for env, value in default.items())
        if set(default) != set(ENVIRONMENTS):
            text += "; required otherwise"
        return text
    return f"`{default}`"


def table() -> str:
    rows = ["| Variable | Expected | Default | Meaning |", "|---|---|---|---|"]
    for variable in VARIABLES:
        secret = " (secret)" if variable.secret else ""
        rows.append(
            f"| `{variable.name}`{secret} | {variable.expected} | {_default(variable)} "
            f"| {variable.help} |"
        )
    return "\n".join(rows)


def render(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = README.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            sys.stderr.write(
                "README.md's configuration table is stale: run "
                "python scripts/render_config_table.py\n"
            )
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
