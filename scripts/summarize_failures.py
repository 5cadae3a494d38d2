"""Print the failed tests of a tox run, briefly, from the envs' JUnit files.

``scripts/test`` calls it when tox fails, so that the end of the output (what a CI log
shows first) names every failed test and its assertion, whichever env it was in. Standard
library only: it runs with the tox venv's Python.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

LINES_PER_FAILURE = 12
WIDTH = 400


def failures(junit: Path) -> list[tuple[str, list[str]]]:
    """(test id, what pytest said of it) for each failed or erroring test: its ``E``
    lines (the assertion and the values) and its last line (where, and the exception)."""
    try:
        root = ET.parse(junit).getroot()  # noqa: S314 - written by our own pytest run
    except (OSError, ET.ParseError) as error:
        return [(str(junit), [f"unreadable JUnit file: {error}"])]
    found = []
    for case in root.iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            test = f"{case.get('classname', '')}::{case.get('name', '')}"
            text = (problem.text or problem.get("message") or "").rstrip().splitlines()
            said = [line for line in text if line.startswith("E ")][: LINES_PER_FAILURE - 1]
            said += text[-1:]
            found.append((f"{problem.tag.upper()} {test}", [line[:WIDTH] for line in said]))
    return found


def main(paths: list[str]) -> int:
    lines = []
    for path in map(Path, paths):
        found = failures(path)
        if found:
            lines.append(f"==== {path.parent.name}: {len(found)} failed ====")
        for test, said in found:
            lines += [test, *(f"    {line}" for line in said)]
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
