"""Where the bot keeps its state and log in a load run, and the storage faults done to them.

Without a sandbox (most runs) the state directory is a temporary directory on the machine's
disk and the log a file in the run's output directory; the lock fault works there: another
connection holds ``BEGIN EXCLUSIVE`` on the state database, as a second process would.

A profile with a read-only or disk-full event runs the bot in a sandbox (root only, see
``sandbox_unavailable``): a keeper process holds a mount namespace of its own
(``unshare --mount --propagation private``) in which the bot's log directory is a small
tmpfs and its state directory another, or for the read-only fault a small ext4 image on a
loop device mounted ``errors=remount-ro``; the bot is started inside it (``nsenter``).
Nothing is mounted in the harness's namespace: the mounts end with the last of the keeper
and the bot, and the loop device is released with them (``mount -o loop`` sets autoclear).

- disk full: the harness fills both filesystems with a file, and deletes it to undo.
- read-only: a filesystem error makes the kernel remount the state filesystem read-only
  (``/sys/fs/ext4/DEV/trigger_fs_error``), as ext4 does on a failing disk. It stays so
  until it is unmounted: a tmpfs (or any mount) cannot be remounted read-only while files
  on it are open for writing (EBUSY), and the kernel's emergency read-only survives a
  remount, so this fault has no undo short of a restart, like on a real machine.

The harness reaches the sandbox's files through ``/proc/KEEPER/root``. SQLite resolves that
magic link to the harness's own root, so the state database is read from a copy: the
keeper's view is copied into the harness's state directory when the bot reports its final
counters and again when it reports that it exited (``follow``), before the harness reads
the recorded presence; the bot's log is copied out when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import os
import select
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from openclaw_voice.store.migrate import database_path
from tests.load.profile import READ_ONLY_EVENTS, SANDBOX_EVENTS, LoadProfile

if TYPE_CHECKING:
    from tests.load.harness import BotProcess

FILESYSTEM_MIB = 16
FILLER = "disk-filler"
LOG_NAME = "bot.log"
STATE_COPY = "bot-state.sqlite3"  # the state database at the end of the run, in out_dir
LOCK_WAIT_SECONDS = 30.0  # the harness's own busy timeout for taking the lock
KEEPER_READY_WITHIN = 30.0
FOLLOW_WITHIN = 24 * 3600.0  # the follower is cancelled when the run ends

# The keeper: mounts the sandbox's filesystems in its new namespace, says so, then holds
# the namespace until its stdin closes. Arguments: log dir, state dir, ext4 image or "".
KEEPER_SCRIPT = f"""
set -eu
mount -t tmpfs -o size={FILESYSTEM_MIB}m,mode=0755 openclaw-load-log "$1"
if [ -n "$3" ]; then
    mount -o loop,errors=remount-ro "$3" "$2"
else
    mount -t tmpfs -o size={FILESYSTEM_MIB}m,mode=0750 openclaw-load-state "$2"
fi
echo ready
exec cat >/dev/null
"""


class StorageFaultError(RuntimeError):
    """A storage fault could not be set up or carried out."""


def sandbox_unavailable() -> str | None:
    """Why the storage sandbox cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "mounting filesystems in a mount namespace of the bot's own needs root"
    missing = [tool for tool in ("unshare", "nsenter", "mount", "mkfs.ext4") if not _which(tool)]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    return None


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


@dataclass
class _Sandbox:
    keeper: subprocess.Popen[bytes]
    work: Path  # the harness's temporary directory: the ext4 image, the log's mount point

    @property
    def log_dir(self) -> Path:
        return self.work / "log"

    @property
    def root(self) -> Path:
        """The keeper's (and the bot's) view of the file system."""
        return Path(f"/proc/{self.keeper.pid}/root")


class BotStorage:
    """The bot's state directory and log file, and the faults the harness can do to them."""

    def __init__(self, state_dir: Path, out_dir: Path, sandbox: _Sandbox | None) -> None:
        self.state_dir = state_dir
        self.out_dir = out_dir
        # Where the harness reads the bot's log once the run is over, and where the bot
        # writes it (in the sandbox: a directory of its own, the mount point of a tmpfs).
        self.harness_log_path = out_dir / LOG_NAME
        self.log_path = self.harness_log_path if sandbox is None else sandbox.log_dir / LOG_NAME
        self._sandbox = sandbox
        self._lock: sqlite3.Connection | None = None
        self._locked_at = 0.0
        self._follower: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.contextmanager
    def prepare(cls, profile: LoadProfile, state_dir: Path, out_dir: Path) -> Iterator[BotStorage]:
        """The storage for ``profile``'s run (state in ``state_dir``, the log in
        ``out_dir``); everything it made is gone when it ends."""
        actions = {action for _, action in profile.events}
        sandbox = None
        if actions & SANDBOX_EVENTS:
            reason = sandbox_unavailable()
            if reason is not None:
                raise StorageFaultError(f"storage faults need the sandbox: {reason}")
            sandbox = _start_sandbox(state_dir, ext4=bool(actions & READ_ONLY_EVENTS))
        storage = cls(state_dir, out_dir, sandbox)
        try:
            yield storage
        finally:
            storage._close()

    # --- the bot's process --------------------------------------------------------------

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the sandbox (in the keeper's working directory)."""
        if self._sandbox is None:
            return argv
        nsenter = _which("nsenter") or "nsenter"
        return [nsenter, f"--target={self._sandbox.keeper.pid}", "--mount", "--wd", "--", *argv]

    def follow(self, bot: BotProcess) -> None:
        """Keep the harness's state directory a copy of the sandbox's (see the module doc)."""
        if self._sandbox is not None:
            self._follower = asyncio.create_task(self._copy_state_on(bot), name="state-copy")

    async def _copy_state_on(self, bot: BotProcess) -> None:
        # Waiting before the harness does, on the same events, this task resumes first and
        # copies without yielding: the copy is complete when the harness reads it.
        from tests.load.harness import BotProcessError  # here: the harness imports us

        for kind in ("final", "exited"):
            try:
                await bot.wait(kind, FOLLOW_WITHIN)
            except BotProcessError:
                return
            self._copy_state()

    def _copy_state(self) -> None:
        source = self.view(self.state_dir)
        for suffix in ("", "-wal"):
            name = database_path(self.state_dir).name + suffix
            target = self.state_dir / name
            target.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(source / name, target)
        (self.state_dir / (database_path(self.state_dir).name + "-shm")).unlink(missing_ok=True)

    def _keep_state(self) -> None:
        """The state database as the run left it, in the output directory (``STATE_COPY``)."""
        name = database_path(self.state_dir).name
        for suffix in ("", "-wal"):
            target = self.out_dir / (STATE_COPY + suffix)
            target.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(self.state_dir / (name + suffix), target)

    def view(self, path: Path) -> Path:
        """Where the harness finds the bot's ``path`` (inside the sandbox, if there is one)."""
        if self._sandbox is None:
            return path
        return self._sandbox.root / path.relative_to("/")

    # --- faults -------------------------------------------------------------------------

    async def lock(self) -> dict[str, Any]:
        """Another connection takes the state database's write lock and keeps it."""
        if self._sandbox is not None:
            raise StorageFaultError("the lock fault works on an unsandboxed state directory")
        if self._lock is not None:
            raise StorageFaultError("the state database is already locked")
        asked = time.monotonic()
        self._lock = await asyncio.to_thread(_connect, database_path(self.state_dir))
        await asyncio.to_thread(self._lock.execute, "BEGIN EXCLUSIVE")
        self._locked_at = time.monotonic()
        # As the database writes updated_at, to compare with what it recorded.
        wall = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return {"waited_seconds": round(self._locked_at - asked, 3), "locked_at": wall}

    async def unlock(self) -> dict[str, Any]:
        if self._lock is None:
            raise StorageFaultError("the state database is not locked")
        self._release_lock()
        return {"held_seconds": round(time.monotonic() - self._locked_at, 3)}

    async def read_only(self) -> dict[str, Any]:
        """A filesystem error: the kernel remounts the state filesystem read-only."""
        sandbox = self._require_sandbox()
        device = _mount_source(sandbox.keeper.pid, self.state_dir)
        if not device.startswith("/dev/loop"):
            raise StorageFaultError(f"the state directory is on {device}, not the ext4 image")
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        trigger.write_text("storage fault test: remount read-only\n")
        probe = self.view(self.state_dir) / "read-only-probe"
        try:
            probe.write_bytes(b"x")
        except OSError as error:
            if error.errno != errno.EROFS:
                raise
        else:
            probe.unlink()
            raise StorageFaultError(f"{device} is still writable after the error")
        return {"device": device}

    async def fill(self) -> dict[str, Any]:
        """The bot's state and log filesystems full: a file takes every free block."""
        self._require_sandbox()
        filled = {}
        for name, directory in (("state", self.state_dir), ("log", self.log_path.parent)):
            filled[name] = _fill(self.view(directory) / FILLER)
        return {"filled_bytes": filled}

    async def free(self) -> dict[str, Any]:
        self._require_sandbox()
        for directory in (self.state_dir, self.log_path.parent):
            (self.view(directory) / FILLER).unlink()
        return {}

    def _require_sandbox(self) -> _Sandbox:
        if self._sandbox is None:
            raise StorageFaultError("this fault needs the storage sandbox (see SANDBOX_EVENTS)")
        return self._sandbox

    # --- the end ------------------------------------------------------------------------

    def _release_lock(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(sqlite3.Error):
                self._lock.rollback()
            self._lock.close()
            self._lock = None

    def _close(self) -> None:
        self._release_lock()
        if self._follower is not None:
            self._follower.cancel()
        self._keep_state()
        sandbox = self._sandbox
        if sandbox is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(self.view(self.log_path), self.harness_log_path)
        finally:
            _stop_keeper(sandbox.keeper)
            shutil.rmtree(sandbox.work, ignore_errors=True)


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: the BEGIN is ours; any thread may release it.
    return sqlite3.connect(
        path, timeout=LOCK_WAIT_SECONDS, isolation_level=None, check_same_thread=False
    )


def _start_sandbox(state_dir: Path, *, ext4: bool) -> _Sandbox:
    work = Path(tempfile.mkdtemp(prefix="load-storage-"))
    log_dir = work / "log"
    try:
        log_dir.mkdir()
        image = ""
        if ext4:
            path = work / "state.ext4"
            with path.open("wb") as file:
                file.truncate(FILESYSTEM_MIB << 20)
            # No journal: the error remounts it read-only without an aborted journal; no
            # blocks reserved for root (the bot runs as root here).
            _run_tool(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(path)])
            image = str(path)
        unshare = _which("unshare") or "unshare"
        arguments = ["keeper", str(log_dir), str(state_dir), image]
        keeper = subprocess.Popen(  # noqa: S603 - our script, our paths
            [unshare, "--mount", "--propagation", "private", "sh", "-c", KEEPER_SCRIPT, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    sandbox = _Sandbox(keeper, work)
    try:
        assert keeper.stdout is not None
        ready = _read_line(keeper.stdout, KEEPER_READY_WITHIN)
        if ready is None:
            raise StorageFaultError(
                f"the storage sandbox did not start within {KEEPER_READY_WITHIN:.0f} s"
            )
        if ready != b"ready\n":  # the keeper failed and exits
            keeper.wait(10)
            error = keeper.stderr.read().decode(errors="replace") if keeper.stderr else ""
            raise StorageFaultError(f"the storage sandbox did not start: {error.strip()}")
    except BaseException:
        _stop_keeper(keeper)
        shutil.rmtree(work, ignore_errors=True)
        raise
    return sandbox


def _read_line(stream: IO[bytes], within: float) -> bytes | None:
    """A line from a pipe (b"" at its end), or None when nothing comes within ``within``."""
    readable, _, _ = select.select([stream], [], [], within)
    return stream.readline() if readable else None


def _stop_keeper(keeper: subprocess.Popen[bytes]) -> None:
    """Close the keeper's stdin: it exits, and its namespace ends once the bot has too."""
    if keeper.stdin is not None:
        with contextlib.suppress(OSError):
            keeper.stdin.close()
    try:
        keeper.wait(10)
    except subprocess.TimeoutExpired:
        keeper.kill()
        keeper.wait()
    for stream in (keeper.stdout, keeper.stderr):
        if stream is not None:
            stream.close()


def _run_tool(argv: list[str]) -> None:
    tool = _which(argv[0]) or argv[0]
    done = subprocess.run(  # noqa: S603 - a system tool on our files
        [tool, *argv[1:]], capture_output=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise StorageFaultError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")


def _mount_source(pid: int, mount_point: Path) -> str:
    """The source (device) of the mount at ``mount_point`` in process ``pid``'s namespace."""
    source = None
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[4] == str(mount_point):
            source = fields[separator + 2]  # the last mount there is the one in use
    if source is None:
        raise StorageFaultError(f"nothing is mounted at {mount_point} in the sandbox")
    return source


def _fill(path: Path) -> int:
    """Create ``path`` taking every free byte of its filesystem; the bytes taken."""
    free = os.statvfs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    taken = 0
    try:
        size = free.f_bavail * free.f_frsize
        if size:
            with contextlib.suppress(OSError):
                os.posix_fallocate(fd, 0, size)
                taken = size
        os.lseek(fd, 0, os.SEEK_END)
        for chunk in (1 << 16, 1 << 12, 1):  # whatever the reservation left
            while True:
                try:
                    taken += os.write(fd, b"\0" * chunk)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    if os.statvfs(path.parent).f_bavail:
        raise StorageFaultError(f"{path.parent} still has free blocks after filling it")
    return taken
