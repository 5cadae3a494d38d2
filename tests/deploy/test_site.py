"""site.yml against two clean nspawn hosts (real systemd as PID 1, real sshd, Debian's
HAProxy), then the hosts' behaviour: hardened slots, restarts, watchdog, HAProxy routing.

What runs in the slots is the release built by scripts/build-release, installed from its
wheelhouse, with the deploy stub (stub/openclaw_voice_deploy_stub.py) as ExecStart: the
real settings loader, ops server and systemd notifier, with the Discord connection
simulated as up, since no Discord exists here. So these tests prove the packaging, the
unit, systemd's supervision and HAProxy's health-checked routing, not Discord behaviour.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    Ansible,
    Host,
    Lab,
    PlaybookRun,
    Release,
    site_vars,
    wait_for,
)

SLOT = "blue"
UNIT = f"openclaw-voice@{SLOT}.service"
RESTART_DEADLINE = 30.0
# WatchdogSec (10 s by default) + stop + RestartSec, with room for a loaded machine.
WATCHDOG_DEADLINE = 45.0
HAPROXY_DEADLINE = 15.0
ADMIN_SOCKET_CLIENT = (
    "python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); "
    's.connect("/run/haproxy/admin.sock"); s.sendall(sys.argv[1].encode() + b"\\n"); '
    "print(s.makefile().read())'"
)


@pytest.fixture(scope="module")
def provisioned(
    ansible: Ansible, fleet: Lab, staging_inventory: Path, release: Release
) -> PlaybookRun:
    result = ansible.playbook(
        "site.yml", inventory=staging_inventory, extra_vars=site_vars(release)
    )
    assert result.returncode == 0, result.output[-10000:]
    return result


def show(fleet: Lab, host: Host, unit: str, *properties: str) -> dict[str, str]:
    argv = " ".join(f"-p {name}" for name in properties)
    output = fleet.ssh(host, f"systemctl show {argv} {unit}").stdout
    values: dict[str, str] = {}
    for line in output.splitlines():
        name, _, value = line.partition("=")
        # A list property (EnvironmentFiles=) comes as one line per item.
        values[name] = f"{values[name]}\n{value}" if name in values else value
    return values


def test_site_from_clean(provisioned: PlaybookRun, fleet: Lab) -> None:
    for host in fleet.hosts:
        recap = provisioned.recap[host.name]
        assert recap["failed"] == 0
        assert recap["unreachable"] == 0
        assert recap["changed"] > 0
    print(f"site.yml from clean: {provisioned.seconds:.1f}s")


def test_second_run_changes_nothing(
    provisioned: PlaybookRun,
    ansible: Ansible,
    fleet: Lab,
    staging_inventory: Path,
    release: Release,
) -> None:
    again = ansible.playbook("site.yml", inventory=staging_inventory, extra_vars=site_vars(release))
    assert again.returncode == 0, again.output[-10000:]
    for host in fleet.hosts:
        assert again.recap[host.name]["changed"] == 0, again.output[-10000:]
        assert again.recap[host.name]["failed"] == 0
    print(f"site.yml again: {again.seconds:.1f}s")


HARDENING = {
    "Type": "notify",
    "NotifyAccess": "main",
    "User": "openclaw",
    "Group": "openclaw",
    "Restart": "on-failure",
    "WatchdogUSec": "10s",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "CapabilityBoundingSet": "",
    "ReadWritePaths": "/var/lib/openclaw-voice",
    "MemoryMax": str(1024**3),
    "ActiveState": "active",
    "SubState": "running",
}


def test_slot_runs_as_openclaw_with_the_hardening(provisioned: PlaybookRun, fleet: Lab) -> None:
    for host in fleet.hosts:
        values = show(
            fleet,
            host,
            UNIT,
            *HARDENING,
            "MainPID",
            "SystemCallFilter",
            "EnvironmentFiles",
            "RestrictAddressFamilies",
        )
        assert {name: values[name] for name in HARDENING} == HARDENING
        families = set(values["RestrictAddressFamilies"].split())
        assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
        allowed = values["SystemCallFilter"].split()
        assert "read" in allowed
        assert "reboot" not in allowed
        assert "mount" not in allowed
        assert "/etc/openclaw-voice/blue.env" in values["EnvironmentFiles"]
        assert "/etc/openclaw-voice/secrets.env" in values["EnvironmentFiles"]
        # The running process itself: user, no new privileges, seccomp, no capabilities.
        pid = values["MainPID"]
        status = fleet.ssh(host, f"cat /proc/{pid}/status").stdout
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        owner = fleet.ssh(host, f"stat -c %U /proc/{pid}").stdout.strip()
        assert owner == "openclaw"
        assert fields["NoNewPrivs"].strip() == "1"
        assert fields["Seccomp"].strip() == "2"
        assert int(fields["CapBnd"].strip(), 16) == 0
        assert int(fields["CapEff"].strip(), 16) == 0


def test_files_owners_and_modes(provisioned: PlaybookRun, fleet: Lab) -> None:
    expected = {
        "/etc/openclaw-voice/secrets.env": "600 root root",
        "/etc/openclaw-voice/blue.env": "640 root openclaw",
        "/etc/openclaw-voice": "750 root openclaw",
        "/var/lib/openclaw-voice": "750 openclaw openclaw",
        "/opt/openclaw-voice/blue/venv/bin/openclaw-voice": "755 root root",
    }
    for host in fleet.hosts:
        for path, mode in expected.items():
            found = fleet.ssh(host, f"stat -c '%a %U %G' {path}").stdout.strip()
            assert found == mode, path
        shell = fleet.ssh(host, "getent passwd openclaw").stdout.strip().split(":")[-1]
        assert shell == "/usr/sbin/nologin"
        version = fleet.ssh(
            host, "/opt/openclaw-voice/green/venv/bin/openclaw-voice --version"
        ).stdout
        assert (
            version.split()[-1]
            == json.loads(fleet.ssh(host, "curl -s http://127.0.0.1:8082/health").stdout)["version"]
        )


def _restarted(fleet: Lab, host: Host, old_pid: str, old_restarts: int) -> bool:
    values = show(fleet, host, UNIT, "MainPID", "NRestarts", "ActiveState")
    return (
        values["ActiveState"] == "active"
        and values["MainPID"] not in ("0", old_pid)
        and int(values["NRestarts"]) > old_restarts
    )


def test_restarts_after_sigkill(provisioned: PlaybookRun, fleet: Lab) -> None:
    host = fleet.hosts[0]
    before = show(fleet, host, UNIT, "MainPID", "NRestarts")
    fleet.ssh(host, f"kill -KILL {before['MainPID']}")
    wait_for(
        lambda: _restarted(fleet, host, before["MainPID"], int(before["NRestarts"])),
        f"{UNIT} to restart after SIGKILL",
        RESTART_DEADLINE,
    )
    assert fleet.ssh(host, "curl -sf http://127.0.0.1:8081/health").returncode == 0


def test_watchdog_restarts_a_hung_process(provisioned: PlaybookRun, fleet: Lab) -> None:
    host = fleet.hosts[1]
    before = show(fleet, host, UNIT, "MainPID", "NRestarts")
    since = fleet.ssh(host, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    fleet.ssh(host, f"kill -STOP {before['MainPID']}")
    started = time.monotonic()
    wait_for(
        lambda: _restarted(fleet, host, before["MainPID"], int(before["NRestarts"])),
        f"the watchdog to restart the SIGSTOPped {UNIT}",
        WATCHDOG_DEADLINE,
    )
    elapsed = time.monotonic() - started
    journal = fleet.ssh(host, f"journalctl --no-pager -u {UNIT} --since '{since}'").stdout
    # systemd names the cause: the pings stopped, not a crash or a kill.
    assert "Watchdog timeout" in journal, journal[-3000:]
    print(f"watchdog restart after SIGSTOP: {elapsed:.1f}s")


def test_haproxy_config_is_valid(provisioned: PlaybookRun, fleet: Lab) -> None:
    for host in fleet.hosts:
        check = fleet.ssh(host, "haproxy -c -f /etc/haproxy/haproxy.cfg")
        assert "Configuration file is valid" in check.stdout + check.stderr
        assert fleet.ssh(host, "systemctl is-active haproxy").stdout.strip() == "active"


def _server_states(fleet: Lab, host: Host) -> dict[str, str]:
    """Each slot's check status and weight from the stats page, e.g. {"blue": "UP/100"}."""
    csv = fleet.ssh(host, "curl -s 'http://127.0.0.1:8404/stats;csv'").stdout
    states = {}
    for line in csv.splitlines():
        cells = line.split(",")
        if len(cells) > 18 and cells[0] == "openclaw_voice" and cells[1] in ("blue", "green"):
            states[cells[1]] = f"{cells[17]}/{cells[18]}"
    return states


def _front(host: Host, path: str = "/ready") -> tuple[int, str | None]:
    """Status and serving slot of a request through HAProxy's public frontend."""
    url = f"http://{host.address}:8080{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("X-OpenClaw-Slot")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-OpenClaw-Slot")


def _admin(fleet: Lab, host: Host, command: str) -> str:
    return fleet.ssh(host, f"{ADMIN_SOCKET_CLIENT} '{command}'").stdout


def test_haproxy_routes_to_the_ready_slot(provisioned: PlaybookRun, fleet: Lab) -> None:
    host = fleet.hosts[0]
    standby = "/var/lib/openclaw-voice/deploy-stub-standby-{port}"

    def states_are(expected: dict[str, str]) -> bool:
        return _server_states(fleet, host) == expected

    # site.yml: blue active (weight 100); green idle with weight 0 (no traffic, like
    # DRAIN), both health-checked on /ready.
    wait_for(lambda: states_are({"blue": "UP/100", "green": "UP/0"}), "blue UP", HAPROXY_DEADLINE)
    assert _front(host) == (200, "blue")
    try:
        # Blue stops being ready: its /ready check fails, HAProxy takes it out.
        fleet.ssh(host, f"touch {standby.format(port=8081)}")
        wait_for(
            lambda: states_are({"blue": "DOWN/100", "green": "UP/0"}), "blue DOWN", HAPROXY_DEADLINE
        )
        assert _front(host)[0] == 503  # green is ready but has weight 0: no traffic
        # Through the runtime API, green takes traffic; it is the only ready slot.
        _admin(fleet, host, "set weight openclaw_voice/green 100")
        wait_for(lambda: _front(host) == (200, "green"), "green serving", HAPROXY_DEADLINE)
    finally:
        fleet.ssh(host, f"rm -f {standby.format(port=8081)}")
        _admin(fleet, host, "set weight openclaw_voice/green 0")
    wait_for(lambda: states_are({"blue": "UP/100", "green": "UP/0"}), "blue UP", HAPROXY_DEADLINE)
    assert _front(host) == (200, "blue")
