"""Real systemd hosts for the deploy tests and Molecule: systemd-nspawn containers over ssh.

One Debian minbase rootfs is built with mmdebstrap and cached outside the repository
(``/var/cache/openclaw-voice-test/rootfs-<hash>``). A lab copies it per host, gives each
host its own ``10.77.N.0/24`` veth network (N leased under a lock, skipping ranges in
use), fresh ssh host and client keys, and boots it with ``systemd-nspawn --boot``. Hosts
reach the Debian mirror through a masquerade rule in an nftables table of the lab and
``net.ipv4.ip_forward=1``; both are undone by ``down`` (ip_forward only when no other
live lab still needs it). ``down`` removes exactly what ``up`` made, by the PIDs, names
and paths recorded in the lab's state file.

Used by ``tests/deploy/conftest.py`` and, as a command, by the Molecule scenarios::

    python -m tests.deploy.nspawn up --state FILE [--instance-config FILE] NAME...
    python -m tests.deploy.nspawn down --state FILE
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("OPENCLAW_VOICE_TEST_CACHE", "/var/cache/openclaw-voice-test"))
RUN_DIR = Path("/run/openclaw-voice-test")
SUITE = "bookworm"
INCLUDE = (
    "systemd,systemd-sysv,dbus,python3,python3-venv,python3-apt,openssh-server,curl,"
    "iproute2,ca-certificates"
)
ROOTFS_FORMAT = "1"  # bump when the rootfs recipe changes
REQUIRED_TOOLS = ("systemd-nspawn", "mmdebstrap", "nft", "ip", "ssh", "ssh-keygen", "sysctl")
BOOT_DEADLINE = 60.0
STOP_DEADLINE = 30.0


# --- small helpers ---------------------------------------------------------------------


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    timeout: float = 300.0,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; a failure shows the command and its output."""
    result = subprocess.run(  # noqa: S603 - argv lists built by the tests
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env=env,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
        )
    return result


def wait_for(
    condition: Callable[[], object], what: str, deadline: float, interval: float = 0.25
) -> None:
    """Poll a condition until it is truthy or the deadline passes.

    Only for waiting on external processes (systemd, sshd, HAProxy checks): every poll is
    a real probe; the interval only keeps it from being a busy loop.
    """
    end = time.monotonic() + deadline
    while True:
        if condition():
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:g}s waiting for {what}")
        time.sleep(interval)


def missing_prerequisites() -> str | None:
    """Why a lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "deploy tests need root (systemd-nspawn, veth, nftables)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: run scripts/deploy-test-packages"
    return None


def _debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    key, separator, value = line.partition(":")
                    if separator and not key.startswith("#"):
                        fields[key.strip().lower()] = value.strip()
                suites = fields.get("suites", "").split()
                if SUITE in suites and "main" in fields.get("components", "").split():
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 4 and parts[0] == "deb" and parts[2] == SUITE:
                    return parts[1]
    raise AssertionError(f"no Debian {SUITE} main source in /etc/apt: cannot build the rootfs")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name; a zombie has exited.
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- rootfs --------------------------------------------------------------------------------


def build_rootfs() -> Path:
    """The cached minbase rootfs, built once (under a lock) for this recipe."""
    mirror = _debian_mirror()
    recipe = json.dumps([ROOTFS_FORMAT, SUITE, INCLUDE, mirror]).encode()
    target = CACHE / f"rootfs-{hashlib.sha256(recipe).hexdigest()[:12]}"
    with _locked(CACHE / "rootfs.lock"):
        if (target / "etc" / "os-release").exists():
            return target
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={INCLUDE}",
                SUITE,
                partial,
                mirror,
            ],
            timeout=900,
        )
        partial.rename(target)
    return target


# --- the lab -------------------------------------------------------------------------------


@dataclass
class Host:
    """One nspawn container."""

    name: str
    number: int
    directory: str
    pid: int = 0

    @property
    def address(self) -> str:
        return f"10.77.{self.number}.2"

    @property
    def gateway(self) -> str:
        return f"10.77.{self.number}.1"

    @property
    def machine(self) -> str:
        """nspawn's machine name: unique per leased network, so labs never collide."""
        return f"ocv-lab{self.number}"

    @property
    def veth(self) -> str:
        return f"ve-{self.machine}"


@dataclass
class Lab:
    """Everything `up` made, recorded so that `down` removes exactly that."""

    workdir: str
    hosts_root: str
    key: str
    known_hosts: str
    table: str = ""
    hosts: list[Host] = field(default_factory=list)

    # --- reaching the hosts

    def ssh_argv(self, host: Host) -> list[str]:
        return [
            "ssh",
            "-i",
            self.key,
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=3",
            f"root@{host.address}",
        ]

    def ssh(
        self, host: Host, command: str, *, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return run([*self.ssh_argv(host), command], check=check, timeout=timeout)

    def connection_vars(self) -> dict[str, str]:
        return {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
            ),
        }

    def inventory(self, path: Path, *, group: str, host_vars: dict[str, dict[str, object]]) -> Path:
        """An inventory (JSON, which Ansible reads as YAML) putting the hosts in `group`."""
        hosts = {
            host.name: {"ansible_host": host.address, **host_vars.get(host.name, {})}
            for host in self.hosts
        }
        document = {"all": {"children": {group: {"hosts": hosts, "vars": self.connection_vars()}}}}
        path.write_text(json.dumps(document, indent=2))
        return path

    # --- state

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Lab:
        data = json.loads(path.read_text())
        hosts = [Host(**host) for host in data.pop("hosts")]
        return cls(**data, hosts=hosts)


# --- network leases and forwarding ----------------------------------------------------------


def _lease_numbers(count: int, owner: int) -> list[int]:
    """Claim `count` free N for 10.77.N.0/24: a lease file names its owner PID."""
    leases = RUN_DIR / "leases"
    leases.mkdir(parents=True, exist_ok=True)
    numbers: list[int] = []
    with _locked(RUN_DIR / "leases.lock"):
        used = run(["ip", "-o", "addr", "show"]).stdout
        for number in range(10, 250):
            if len(numbers) == count:
                break
            lease = leases / str(number)
            if lease.exists():
                try:
                    holder = int(lease.read_text().strip() or "0")
                except ValueError:
                    holder = 0
                if _pid_alive(holder):
                    continue
            if f" 10.77.{number}." in used:
                continue
            lease.write_text(f"{owner}\n")
            numbers.append(number)
    if len(numbers) < count:
        _release_numbers(numbers)
        raise AssertionError("no free 10.77.N.0/24 test range")
    return numbers


def _set_lease_owner(number: int, owner: int) -> None:
    (RUN_DIR / "leases" / str(number)).write_text(f"{owner}\n")


def _release_numbers(numbers: Sequence[int]) -> None:
    with _locked(RUN_DIR / "leases.lock"):
        for number in numbers:
            (RUN_DIR / "leases" / str(number)).unlink(missing_ok=True)


def _live_forwarding_users(markers: Path) -> list[Path]:
    live = []
    for marker in markers.glob("[0-9]*"):
        if _pid_alive(int(marker.name)):
            live.append(marker)
        else:
            marker.unlink(missing_ok=True)
    return live


def open_forwarding(lab: Lab) -> None:
    """Masquerade the lab's ranges; ip_forward=1 (the previous value kept for `down`).

    ip_forward is machine-wide: each live lab host leaves a marker (its nspawn PID), and
    the value found before the first marker is restored after the last one goes.
    """
    markers = RUN_DIR / "forwarding"
    with _locked(RUN_DIR / "forwarding.lock"):
        markers.mkdir(parents=True, exist_ok=True)
        original = markers / "original"
        if not _live_forwarding_users(markers) or not original.exists():
            original.write_text(Path("/proc/sys/net/ipv4/ip_forward").read_text())
        for host in lab.hosts:
            (markers / str(host.pid)).touch()
        run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    nets = ", ".join(f"10.77.{host.number}.0/24" for host in lab.hosts)
    lab.table = f"openclaw_voice_test_{lab.hosts[0].number}"
    ruleset = (
        f"table ip {lab.table} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    ip saddr {{ {nets} }} masquerade\n"
        "  }\n"
        "}\n"
    )
    run(["nft", "-f", "-"], stdin=ruleset)


def close_forwarding(lab: Lab) -> None:
    if lab.table:
        run(["nft", "delete", "table", "ip", lab.table], check=False)
        lab.table = ""
    markers = RUN_DIR / "forwarding"
    with _locked(RUN_DIR / "forwarding.lock"):
        for host in lab.hosts:
            (markers / str(host.pid)).unlink(missing_ok=True)
        original = markers / "original"
        if original.exists() and not _live_forwarding_users(markers):
            value = original.read_text().strip() or "0"
            run(["sysctl", "-q", "-w", f"net.ipv4.ip_forward={value}"])
            original.unlink()


# --- hosts -----------------------------------------------------------------------------------


def _layers(host: Host) -> tuple[Path, Path]:
    base = Path(host.directory).parent / f".{host.name}"
    return base / "upper", base / "work"


def _mount_root(rootfs: Path, host: Host) -> None:
    """The host's root: an overlay over the cached rootfs (a copy when overlay fails)."""
    directory = Path(host.directory)
    upper, work = _layers(host)
    for path in (directory, upper, work):
        path.mkdir(parents=True)
    options = f"lowerdir={rootfs},upperdir={upper},workdir={work}"
    mounted = run(["mount", "-t", "overlay", "overlay", "-o", options, directory], check=False)
    if mounted.returncode != 0:
        directory.rmdir()
        run(["cp", "-a", "--reflink=auto", rootfs, directory], timeout=300)


def _apt_caches(host: Host) -> list[str]:
    """apt's download caches, kept per network lease (one user at a time) between runs.

    Only downloads live there (package lists and .deb files): every host still starts
    from the clean rootfs and installs everything itself.
    """
    binds = []
    for inside, name in (("/var/lib/apt/lists", "lists"), ("/var/cache/apt/archives", "debs")):
        outside = CACHE / "apt" / str(host.number) / name
        (outside / "partial").mkdir(parents=True, exist_ok=True)
        if name == "lists" and not any(outside.glob("*_Packages*")):
            # Empty lists must look stale, or apt's cache_valid_time skips the update.
            os.utime(outside, (0, 0))
        binds.append(f"--bind={outside}:{inside}")
    return binds


def _prepare_host(rootfs: Path, host: Host, public_key: str) -> str:
    """Copy the rootfs and configure hostname, network, ssh; return the known_hosts line."""
    directory = Path(host.directory)
    _mount_root(rootfs, host)
    etc = directory / "etc"
    (etc / "hostname").write_text(host.name + "\n")
    network = etc / "systemd" / "network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "10-host0.network").write_text(
        f"[Match]\nName=host0\n\n[Network]\nAddress={host.address}/24\nGateway={host.gateway}\n"
    )
    system = etc / "systemd" / "system"
    for unit, wanted_by in (
        ("systemd-networkd.service", "multi-user.target.wants"),
        ("systemd-networkd.socket", "sockets.target.wants"),
    ):
        (system / wanted_by).mkdir(parents=True, exist_ok=True)
        link = system / wanted_by / unit
        link.unlink(missing_ok=True)
        link.symlink_to(f"/lib/systemd/system/{unit}")
    wait_online = system / "systemd-networkd-wait-online.service"
    wait_online.unlink(missing_ok=True)
    wait_online.symlink_to("/dev/null")
    for old in (etc / "ssh").glob("ssh_host_*"):
        old.unlink()
    host_key = etc / "ssh" / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", host_key])
    ssh_dir = directory / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    key_type, key_body = host_key.with_suffix(".pub").read_text().split()[:2]
    return f"{host.address} {key_type} {key_body}\n"


def _boot(host: Host, log_path: Path) -> None:
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [  # noqa: S607 - found on PATH like every other tool here
                "systemd-nspawn",
                "--register=no",
                "--keep-unit",
                "--boot",
                f"--directory={host.directory}",
                f"--machine={host.machine}",
                "--network-veth",
                "--console=passive",
                "--resolv-conf=copy-host",
                *_apt_caches(host),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host.pid = process.pid
    _set_lease_owner(host.number, process.pid)

    def veth_exists() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"{host.name} exited {process.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        return Path("/sys/class/net", host.veth).exists()

    wait_for(veth_exists, host.veth, BOOT_DEADLINE)
    run(["ip", "addr", "add", f"{host.gateway}/24", "dev", host.veth])
    run(["ip", "link", "set", host.veth, "up"])


def _reap(pid: int) -> bool:
    """True once `pid` is gone (reaping it when it is our child)."""
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return True
    return not _pid_alive(pid)


def _container_init(pid: int) -> int | None:
    """The container's PID 1 (as seen from here) among the descendants of nspawn `pid`."""
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and current != pid and line.split()[-1] == "1":
                return current
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return None


def _stop(host: Host) -> None:
    """Kill the container (it is thrown away), then remove its mounts and files."""
    started = time.monotonic()
    if host.pid and _pid_alive(host.pid):
        init = _container_init(host.pid)
        if init is not None:
            # SIGKILL to a PID namespace's init ends every process in it; nspawn then exits.
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)
        else:
            os.kill(host.pid, signal.SIGTERM)
        try:
            wait_for(lambda: _reap(host.pid), f"{host.name} to stop", STOP_DEADLINE)
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(host.pid, signal.SIGKILL)
            wait_for(lambda: _reap(host.pid), f"{host.name} to die", STOP_DEADLINE)
    if Path("/sys/class/net", host.veth).exists():  # normally gone with the namespace
        run(["ip", "link", "delete", host.veth], check=False)
    directory = str(host.directory)
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1] == directory or line.split()[1].startswith(directory + "/")
    ]
    for mount in sorted(mounts, reverse=True):
        run(["umount", mount], check=False)
    for mount in sorted(mounts, reverse=True):
        if any(line.split()[1] == mount for line in Path("/proc/mounts").read_text().splitlines()):
            run(["umount", "--lazy", mount], check=False)
    shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(_layers(host)[0].parent, ignore_errors=True)
    sys.stderr.write(f"nspawn: removed {host.name} in {time.monotonic() - started:.1f}s\n")


def _wait_for_ssh(lab: Lab, host: Host) -> None:
    def answers() -> bool:
        return lab.ssh(host, "true", check=False, timeout=10).returncode == 0

    wait_for(answers, f"sshd on {host.name}", BOOT_DEADLINE)


def up(names: Sequence[str], workdir: Path) -> Lab:
    """Boot one host per name (its hostname and inventory name); tear down on failure."""
    for name in names:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", name):
            raise ValueError(f"host name {name!r}: lowercase letters, digits and '-'")
    reason = missing_prerequisites()
    if reason:
        raise RuntimeError(reason)
    rootfs = build_rootfs()
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "openclaw-voice-lab", "-f", key])
    hosts_root = Path(tempfile.mkdtemp(prefix="openclaw-voice-lab-", dir="/var/tmp"))
    lab = Lab(
        workdir=str(workdir),
        hosts_root=str(hosts_root),
        key=str(key),
        known_hosts=str(workdir / "known_hosts"),
    )
    numbers = _lease_numbers(len(names), os.getpid())
    lab.hosts = [
        Host(name=name, number=number, directory=str(hosts_root / name))
        for name, number in zip(names, numbers, strict=True)
    ]
    try:
        public_key = key.with_suffix(".pub").read_text()
        known = [_prepare_host(rootfs, host, public_key) for host in lab.hosts]
        Path(lab.known_hosts).write_text("".join(known))
        for host in lab.hosts:
            _boot(host, workdir / f"{host.name}.console.log")
        open_forwarding(lab)
        for host in lab.hosts:
            _wait_for_ssh(lab, host)
    except BaseException:
        down(lab)
        raise
    return lab


def rebuild(lab: Lab, host: Host) -> None:
    """Replace one host by a fresh one from the clean rootfs — same name, address and veth
    network, a new ssh host key (a lost machine provisioned again)."""
    _stop(host)
    public_key = Path(lab.key).with_suffix(".pub").read_text()
    known = _prepare_host(build_rootfs(), host, public_key)
    others = [
        line
        for line in Path(lab.known_hosts).read_text().splitlines(keepends=True)
        if not line.startswith(f"{host.address} ")
    ]
    Path(lab.known_hosts).write_text("".join(others) + known)
    _boot(host, Path(lab.workdir) / f"{host.name}.console.log")
    _wait_for_ssh(lab, host)


def down(lab: Lab) -> None:
    """Stop and remove every host of the lab, its forwarding rules and its leases."""
    try:
        for host in lab.hosts:
            _stop(host)
    finally:
        close_forwarding(lab)
        _release_numbers([host.number for host in lab.hosts])
        shutil.rmtree(lab.hosts_root, ignore_errors=True)


# --- command line (Molecule's create.yml / destroy.yml) ---------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.nspawn")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="boot hosts and record them in the state file")
    start.add_argument("--state", type=Path, required=True)
    start.add_argument("--instance-config", type=Path, help="write Molecule's instance config")
    start.add_argument("names", nargs="+")
    stop = commands.add_parser("down", help="remove everything the state file records")
    stop.add_argument("--state", type=Path, required=True)
    arguments = parser.parse_args(argv)
    state: Path = arguments.state
    if arguments.command == "down":
        if state.exists():
            down(Lab.load(state))
            state.unlink()
        return 0
    if state.exists():  # a previous run left hosts: remove them first
        down(Lab.load(state))
    lab = up(arguments.names, state.parent / "lab")
    lab.save(state)
    if arguments.instance_config is not None:
        config = [
            {
                "instance": host.name,
                "address": host.address,
                "user": "root",
                "port": 22,
                "identity_file": lab.key,
                "ansible_ssh_common_args": lab.connection_vars()["ansible_ssh_common_args"],
            }
            for host in lab.hosts
        ]
        arguments.instance_config.write_text(json.dumps(config, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
