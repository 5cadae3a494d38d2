"""The release the deploy tests install: scripts/build-release output plus the deploy stub.

    python -m tests.deploy.release DIR     (used by the Molecule scenarios)

The stub (stub/openclaw_voice_deploy_stub.py, Molecule's ExecStart; tests/deploy runs the
real bot) is added to the wheelhouse as its own wheel, built here by hand (no build
backend needed), and the wheelhouse tarball and SHA256SUMS are redone so the release
stays self-consistent. ``derive`` makes further versions of a built release.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.nspawn import run

ROOT = Path(__file__).resolve().parents[2]
STUB_SOURCE = Path(__file__).resolve().parent / "stub" / "openclaw_voice_deploy_stub.py"
STUB_DISTRIBUTION = "openclaw-voice-deploy-stub"
STUB_COMMAND = "openclaw-voice-deploy-stub"


@dataclass(frozen=True)
class Release:
    directory: Path
    version: str


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_stub_wheel(directory: Path, version: str) -> Path:
    """A wheel of the deploy stub, depending on the bot's distribution."""
    name = "openclaw_voice_deploy_stub"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": STUB_SOURCE.read_bytes(),
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {STUB_DISTRIBUTION}\n"
            f"Version: {version}\n"
            "Summary: openclaw-voice without Discord, for the deploy tests\n"
            "Requires-Dist: openclaw-discord-voice\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: openclaw-voice-tests\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist_info}/entry_points.txt": (
            f"[console_scripts]\n{STUB_COMMAND} = {name}:main\n".encode()
        ),
    }
    record = io.StringIO()
    for path, data in files.items():
        record.write(f"{path},{_record_hash(data)},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    files[f"{dist_info}/RECORD"] = record.getvalue().encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return wheel


def repack(directory: Path, version: str) -> None:
    """Redo the wheelhouse tarball and SHA256SUMS after changing the wheelhouse."""
    run(
        [
            "tar",
            "--create",
            f"--file=openclaw-voice-{version}-wheelhouse.tar",
            "--sort=name",
            "wheelhouse",
        ],
        cwd=directory,
    )
    listing = sorted(
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.is_file() and path.name != "SHA256SUMS"
    )
    run(["sh", "-c", 'sha256sum "$@" > SHA256SUMS', "sha256sum", *listing], cwd=directory)


def _record(files: dict[str, bytes], dist_info: str) -> bytes:
    record = io.StringIO()
    for path, data in files.items():
        if path != f"{dist_info}/RECORD":
            record.write(f"{path},{_record_hash(data)},{len(data)}\n")
    record.write(f"{dist_info}/RECORD,,\n")
    return record.getvalue().encode()


def derive(
    base: Release, directory: Path, version: str, patches: dict[str, str] | None = None
) -> Release:
    """A copy of ``base`` whose bot wheel says ``version``, with ``patches`` (module path
    -> code appended to it) applied: a second release, or a deliberately broken one,
    without building again."""
    shutil.copytree(base.directory, directory)
    wheelhouse = directory / "wheelhouse"
    name = "openclaw_discord_voice"
    old_wheel = wheelhouse / f"{name}-{base.version}-py3-none-any.whl"
    old_dist_info = f"{name}-{base.version}.dist-info"
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(old_wheel) as archive:
        for info in archive.infolist():
            files[info.filename.replace(old_dist_info, dist_info)] = archive.read(info)
    init = "openclaw_voice/__init__.py"
    files[init] = files[init].replace(
        f'__version__ = "{base.version}"'.encode(), f'__version__ = "{version}"'.encode()
    )
    metadata = f"{dist_info}/METADATA"
    files[metadata] = files[metadata].replace(
        f"\nVersion: {base.version}\n".encode(), f"\nVersion: {version}\n".encode(), 1
    )
    for module, code in (patches or {}).items():
        files[module] = files[module] + b"\n" + code.encode()
    files[f"{dist_info}/RECORD"] = _record(files, dist_info)
    for stale in (old_wheel, directory / old_wheel.name):
        stale.unlink(missing_ok=True)
    (directory / f"openclaw-voice-{base.version}-wheelhouse.tar").unlink()
    new_wheel = wheelhouse / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(new_wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    shutil.copy2(new_wheel, directory / new_wheel.name)
    (directory / "VERSION").write_text(f"{version}\n")
    repack(directory, version)
    return Release(directory=directory, version=version)


def build(directory: Path) -> Release:
    """scripts/build-release into `directory`, plus the stub."""
    run(
        [ROOT / "scripts" / "build-release", "--out", directory],
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    version = (directory / "VERSION").read_text().strip()
    build_stub_wheel(directory / "wheelhouse", version)
    repack(directory, version)
    return Release(directory=directory, version=version)


if __name__ == "__main__":
    build(Path(sys.argv[1]).resolve())
