"""The deploy suite on real systemd hosts: site.yml, deploy.yml, rollback.yml, smoke.yml
and backup.yml against two nspawn hosts (shard 0 and shard 1), the only lab the deploy
tests boot.

Both slots of each host run ``openclaw-voice run`` from the release, logged in to the fake
Discord this test serves on the first host's veth address (its CA copied to the hosts), so
a flip is the bot's own: the standby keeps a gateway session, the admin endpoint moves the
active lock, the promoted slot rejoins the voice channel. A bounded load loop runs through
HAProxy during the deploys; slash commands are sent during the flip.

The scenarios build on each other, in order: bad input stopping site.yml before any change
(against the clean hosts); provisioning from clean, then again with nothing changed; the
active slot's hardening, files and HAProxy's config; the watchdog restarting a hung slot;
a deploy under load while the fake Discord drops the gateway and answers REST slowly; the
active slot SIGKILLed (systemd restarts it, it rejoins its voice channel); a no-op deploy
of the same version; a rollback; HAProxy unreachable; a deploy of a build that fails
readiness on the second host (reverted there; the run stops and names each host's
version); a rollback refused because a standby is down; the disaster recovery of a lost
host: its state backed up, the machine replaced by a fresh one, `site.yml` restoring the
backup, the bot back in its voice channel; and last a rollback of one host whose active
slot is down.
Timings are printed and written to ``deploy-timings.json`` in the test's directory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord.opus
import pytest

from tests.deploy.conftest import TEST_SECRETS, Ansible, PlaybookRun, Release
from tests.deploy.nspawn import Host, Lab, down, missing_prerequisites, rebuild, run, up, wait_for
from tests.deploy.release import derive
from tests.fakes.discord import BOT_TOKEN, InteractionRecord
from tests.fakes.discord.recorder import Recorded
from tests.fakes.discord.threaded import ThreadedFakeDiscord
from tests.fakes.discord.world import Guild

HOSTS = 2
WATCH_SECONDS = 10
CA_PATH = "/etc/openclaw-voice-test-ca.pem"
STATE = "/var/lib/openclaw-voice-deploy"
SLOT_PORTS = {"blue": 8081, "green": 8082}
# systemd's restart (RestartSec=2) and the watchdog (WatchdogSec=10 + stop + RestartSec),
# and the bot back to ready and in its channel, with room for a loaded machine.
RESTART_DEADLINE = 30.0
WATCHDOG_DEADLINE = 45.0
BACK_DEADLINE = 90.0
# The fake's REST answers during the deploy under faults (seconds per request).
REST_DELAY = 0.25
# Fails readiness once promoted, and only on the host running shard 1 (the second host).
BROKEN_PATCH = """
_healthy_not_ready_reasons = AppStatus.not_ready_reasons


def _broken_not_ready_reasons(self):
    import os

    reasons = _healthy_not_ready_reasons(self)
    if self.slot_role == "active" and "1" in os.environ.get("SHARD_IDS", "").split(","):
        reasons.append("broken build (deploy test)")
    return reasons


AppStatus.not_ready_reasons = _broken_not_ready_reasons
"""


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = missing_prerequisites()
    if reason is None and not (Path(sys.executable).parent / "ansible-playbook").exists():
        reason = "ansible-playbook is not installed next to this Python (tox -e deploy)"
    if reason:
        pytest.skip(reason)
    names = [f"ocv{os.getpid() % 100000}b{index}" for index in range(1, HOSTS + 1)]
    lab = up(names, tmp_path_factory.mktemp("bluegreen"))
    try:
        yield lab
    finally:
        down(lab)


@dataclass
class Discord:
    threaded: ThreadedFakeDiscord
    guilds: dict[int, Guild]  # shard id -> a guild of that shard

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.threaded.call(coro, timeout)

    def wait_answered(self, record: InteractionRecord, within: float = 20.0) -> None:
        """Until the fake has the bot's response to ``record`` (an event, not a poll)."""
        self.call(
            self.threaded.fake.recorder.wait_for(
                "interaction_response",
                lambda event: event.data["interaction_id"] == record.id,
                within=within,
            ),
            timeout=within + 5,
        )

    def mark(self) -> frozenset[int]:
        """What the fake has recorded so far, for :meth:`wait_event` to skip."""

        async def seen() -> frozenset[int]:
            return frozenset(id(event) for event in self.threaded.fake.recorder.events)

        return self.threaded.call(seen())

    def after(
        self, since: frozenset[int], predicate: Callable[[Recorded], bool] | None = None
    ) -> Callable[[Recorded], bool]:
        """A recorder predicate for events recorded after ``since`` (the mark)."""
        return lambda event: id(event) not in since and (predicate is None or predicate(event))

    def wait_event(
        self,
        kind: str,
        since: frozenset[int],
        predicate: Callable[[Recorded], bool] | None = None,
        *,
        within: float,
    ) -> Recorded:
        """The first ``kind`` event after ``since`` matching ``predicate``: the fake's
        recorder wakes the wait (no polling); ``TimeoutError`` after ``within``."""
        recorder = self.threaded.fake.recorder
        waiting = recorder.wait_for(kind, self.after(since, predicate), within=within)
        return self.threaded.call(waiting, timeout=within + 5)

    def expect(
        self,
        kind: str,
        since: frozenset[int],
        predicate: Callable[[Recorded], bool] | None = None,
        *,
        within: float,
    ) -> concurrent.futures.Future[float]:
        """Like :meth:`wait_event` without blocking: the future gives the monotonic time at
        which the fake recorded the event (cancel it if no longer wanted)."""
        recorder = self.threaded.fake.recorder

        async def when() -> float:
            await recorder.wait_for(kind, self.after(since, predicate), within=within)
            return time.monotonic()

        return self.threaded.submit(when())

    def callback_attempts(self, records: list[InteractionRecord]) -> list[int]:
        """For each interaction, how many times a bot POSTed its response (the fake keeps
        only the first callback and answers 400 to any other, so count the requests)."""
        attempts = Counter(
            event.data["path"].split("/")[2]
            for event in self.threaded.fake.recorder.of_kind("rest")
            if event.data["method"] == "POST"
            and event.data["path"].startswith("/interactions/")
            and event.data["path"].endswith("/callback")
        )
        return [attempts[str(record.id)] for record in records]

    def trust(self, lab: Lab, host: Host) -> None:
        """Put the fake's CA where the bot's DISCORD_CA_BUNDLE points on ``host``."""
        ca = Path(str(self.threaded.fake.endpoints.ca_bundle)).read_text()
        run([*lab.ssh_argv(host), f"cat > {CA_PATH} && chmod 0644 {CA_PATH}"], stdin=ca)


@pytest.fixture(scope="module")
def discord_fake(lab: Lab) -> Iterator[Discord]:
    discord.opus._load_default()
    threaded = ThreadedFakeDiscord(host=lab.hosts[0].gateway, guilds=2)
    fake = threaded.start()
    try:

        async def shard_guilds() -> dict[int, Guild]:
            found: dict[int, Guild] = {}
            for attempt in range(8):
                for guild in fake.world.guilds.values():
                    found.setdefault((guild.id >> 22) % HOSTS, guild)
                if len(found) == HOSTS:
                    return found
                fake.world.ids.next()  # shift the next guild's snowflake to another shard
                fake.world.add_guild(f"guild-extra-{attempt}")
            raise AssertionError(f"no guild for every shard: {found}")

        guilds = threaded.call(shard_guilds())
        discord_ = Discord(threaded, guilds)
        for host in lab.hosts:
            discord_.trust(lab, host)
        yield discord_
    finally:
        threaded.stop()


@pytest.fixture(scope="module")
def ansible_bg(lab: Lab) -> Ansible:
    workdir = Path(lab.workdir) / "ansible"
    workdir.mkdir(exist_ok=True)
    return Ansible(lab=lab, workdir=workdir)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    shards = {
        host.name: {"shard_ids": [index], "shard_count": HOSTS}
        for index, host in enumerate(lab.hosts)
    }
    return lab.inventory(Path(lab.workdir) / "staging.json", group="staging", host_vars=shards)


@dataclass(frozen=True)
class Releases:
    first: Release
    second: Release
    broken: Release


@pytest.fixture(scope="module")
def releases(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Releases:
    directory = tmp_path_factory.mktemp("releases")
    return Releases(
        first=release,
        second=derive(release, directory / "second", f"{release.version}.post1"),
        broken=derive(
            release,
            directory / "broken",
            f"{release.version}.post2",
            {"openclaw_voice/ops/status.py": BROKEN_PATCH},
        ),
    )


def bot_vars(discord_fake: Discord, release: Release, **overrides: object) -> dict[str, object]:
    endpoints = discord_fake.threaded.fake.endpoints
    return {
        "env": "staging",
        **TEST_SECRETS,
        "vault_discord_token": BOT_TOKEN,
        "openclaw_voice_release_dir": str(release.directory),
        "openclaw_voice_settings": {
            "DISCORD_API_BASE": endpoints.api_base,
            "DISCORD_GATEWAY_URL": endpoints.gateway_url,
            "DISCORD_CA_BUNDLE": CA_PATH,
        },
        "openclaw_voice_watch_seconds": WATCH_SECONDS,
        # The broken build never becomes ready: do not wait the default 30 s for it.
        "openclaw_voice_promote_timeout": 15,
        **overrides,
    }


# --- observing the hosts -------------------------------------------------------------------


def slot_status(lab: Lab, host: Host, slot: str) -> dict[str, Any] | None:
    result = lab.ssh(
        host, f"curl -s --max-time 3 http://127.0.0.1:{SLOT_PORTS[slot]}/status", check=False
    )
    try:
        value = json.loads(result.stdout)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def deploy_state(lab: Lab, host: Host) -> dict[str, Any]:
    return dict(json.loads(lab.ssh(host, f"cat {STATE}/state.json").stdout))


def history(lab: Lab, host: Host) -> list[dict[str, Any]]:
    text = lab.ssh(host, f"cat {STATE}/history.jsonl", check=False).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def haproxy_weights(lab: Lab, host: Host) -> dict[str, int]:
    states = json.loads(
        lab.ssh(host, "/usr/local/sbin/openclaw-haproxy-cmd --states openclaw_voice").stdout
    )
    return {server: int(state["weight"]) for server, state in states.items()}


def show(lab: Lab, host: Host, unit: str, *properties: str) -> dict[str, str]:
    """``systemctl show`` properties of ``unit`` on ``host``."""
    argv = " ".join(f"-p {name}" for name in properties)
    output = lab.ssh(host, f"systemctl show {argv} {unit}").stdout
    values: dict[str, str] = {}
    for line in output.splitlines():
        name, _, value = line.partition("=")
        # A list property (EnvironmentFiles=) comes as one line per item.
        values[name] = f"{values[name]}\n{value}" if name in values else value
    return values


def restarted(lab: Lab, host: Host, unit: str, before: dict[str, str]) -> bool:
    """systemd restarted ``unit`` since ``before`` (its MainPID and NRestarts then)."""
    values = show(lab, host, unit, "MainPID", "NRestarts", "ActiveState")
    return (
        values["ActiveState"] == "active"
        and values["MainPID"] not in ("0", before["MainPID"])
        and int(values["NRestarts"]) > int(before["NRestarts"])
    )


def front(host: Host, path: str = "/ready") -> tuple[int, str | None]:
    """Status and serving slot of a request through the host's HAProxy frontend."""
    url = f"http://{host.address}:8080{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("X-OpenClaw-Slot")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-OpenClaw-Slot")


def serving_again(lab: Lab, host: Host, slot: str) -> bool:
    """``slot`` is the host's ready active slot and HAProxy sends requests to it."""
    status = slot_status(lab, host, slot) or {}
    return (
        status.get("slot_role") == "active"
        and status.get("ready") is True
        and front(host) == (200, slot)
    )


def active_everywhere(lab: Lab, slot: str, version: str) -> None:
    for host in lab.hosts:
        state = deploy_state(lab, host)
        assert state["active_slot"] == slot, (host.name, state)
        assert state["slots"][slot] == version, (host.name, state)
        status = slot_status(lab, host, slot)
        assert status is not None
        assert (status["slot_role"], status["version"], status["ready"]) == (
            "active",
            version,
            True,
        )
        assert haproxy_weights(lab, host)[slot] == 100
        config = lab.ssh(host, "grep -E '^ +server ' /etc/haproxy/haproxy.cfg").stdout
        assert f"server {slot} 127.0.0.1:{SLOT_PORTS[slot]} check weight 100" in config
        settings = lab.ssh(host, f"cat /etc/openclaw-voice/{slot}.env").stdout
        assert 'SLOT_ROLE="active"' in settings


@dataclass
class Load:
    """A bounded request loop through each host's HAProxy, on its own thread."""

    hosts: list[Host]
    max_requests: int = 20_000
    pause: float = 0.02
    served: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        paths = ("/health", "/status")
        while not self._stop.is_set() and self.requests < self.max_requests:
            host = self.hosts[self.requests % len(self.hosts)]
            url = f"http://{host.address}:8080{paths[self.requests % len(paths)]}"
            self.requests += 1
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    self.served[f"{host.name}/{response.headers.get('X-OpenClaw-Slot')}"] += 1
            except (urllib.error.URLError, OSError) as error:
                self.failures.append(f"{time.strftime('%X')} {url}: {error}")
            self._stop.wait(self.pause)


@dataclass
class Commands:
    """Slash commands sent every ``pause`` seconds on their own thread (bounded)."""

    discord_fake: Discord
    guild: Guild
    user: Any
    pause: float = 0.5
    max_commands: int = 200
    sent: list[InteractionRecord] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Commands:
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        fake = self.discord_fake.threaded.fake
        while not self._stop.is_set() and len(self.sent) < self.max_commands:
            self.sent.append(
                self.discord_fake.call(
                    fake.invoke_slash_command("voice status", user=self.user, guild=self.guild)
                )
            )
            self._stop.wait(self.pause)

    def wait_answered(self, within: float = 20.0) -> None:
        for record in self.sent:
            self.discord_fake.wait_answered(record, within)


@dataclass
class GatewayDrop:
    """Armed on entry: when the fake records a ``kind`` event matching ``predicate``, it
    closes every bot's gateway websocket, resumably (``fake.gateway.drop``). It runs on the
    fake's loop, woken by the recorder; disarmed on exit if it has not fired."""

    discord_fake: Discord
    kind: str
    predicate: Callable[[Recorded], bool]
    within: float = 300.0
    _fired: concurrent.futures.Future[list[str]] | None = None

    def __enter__(self) -> GatewayDrop:
        fake = self.discord_fake.threaded.fake

        async def armed() -> list[str]:
            await fake.recorder.wait_for(self.kind, self.predicate, within=self.within)
            connected = [
                session.session_id
                for session in fake.gateway.sessions.values()
                if session.ws is not None
            ]
            await fake.gateway.drop(resumable=True)
            return connected

        self._fired = self.discord_fake.threaded.submit(armed())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fired is not None and not self._fired.done():
            self._fired.cancel()

    def dropped(self) -> list[str]:
        """The gateway sessions that were connected when it fired (raises if it did not)."""
        fired = self._fired
        assert fired is not None
        assert fired.done(), "the gateway drop never fired"
        return fired.result()


def of_session(session_id: str) -> Callable[[Recorded], bool]:
    return lambda event: event.data.get("session_id") == session_id


@contextlib.contextmanager
def slow_rest(discord_fake: Discord, delay: float) -> Iterator[None]:
    """Every REST request to the fake waits ``delay`` seconds before its answer."""
    rest = discord_fake.threaded.fake.controls.rest

    async def set_delay(value: float) -> None:
        rest.delay = value

    discord_fake.call(set_delay(delay))
    try:
        yield
    finally:
        discord_fake.call(set_delay(0.0))


TIMINGS: dict[str, Any] = {}


def note(name: str, value: object) -> None:
    TIMINGS[name] = value
    print(f"{name}: {value}")


@pytest.fixture(scope="module", autouse=True)
def write_timings(lab: Lab) -> Iterator[None]:
    yield
    (Path(lab.workdir) / "deploy-timings.json").write_text(json.dumps(TIMINGS, indent=2))


@dataclass(frozen=True)
class Rig:
    """The provisioned lab and what drives it."""

    lab: Lab
    ansible: Ansible
    inventory: Path
    discord: Discord
    releases: Releases
    provisioned: PlaybookRun
    logs: Path

    def playbook(self, name: str, release: Release, *args: str, **extra: object) -> PlaybookRun:
        """Run a playbook (``args``: more ansible-playbook options); its whole output is
        kept in the lab's directory for a post-mortem."""
        result = self.ansible.playbook(
            name,
            *args,
            inventory=self.inventory,
            extra_vars=bot_vars(self.discord, release, **extra),
        )
        self.logs.mkdir(exist_ok=True)
        (self.logs / f"{len(list(self.logs.iterdir())):02d}-{name}.log").write_text(result.output)
        return result


def assert_ok(result: PlaybookRun) -> None:
    assert result.returncode == 0, result.output[-12000:]


# --- the scenarios, in order ---------------------------------------------------------------

# 0. Bad input stops site.yml early, with a message saying what to fix, before any change.
# Against the clean hosts (before `rig` provisions them): each failing run must report
# changed=0 and leave no trace of the bot on the hosts.

BAD_INPUTS: dict[str, dict[str, object]] = {
    "unknown-environment": {"env": "qa"},
    "missing-vault-secret": {"vault_tts_api_key": ""},
    "placeholder-vault-secret": {"vault_discord_token": "CHANGE-ME-discord-bot-token"},
    "wheel-version-mismatch": {"openclaw_voice_version": "9.9.9"},
    "not-enough-disk": {"openclaw_voice_min_free_mb": 10**9},
    "stop-timeout-shorter-than-drain": {"openclaw_voice_timeout_stop_sec": 20},
    "keep-releases-not-a-number": {"openclaw_voice_keep_releases": "all"},
    "host-without-shard-ids": {},  # the inventory is what is wrong
}


@pytest.fixture(scope="module")
def preflight_runs(
    lab: Lab, ansible_bg: Ansible, inventory: Path, discord_fake: Discord, release: Release
) -> dict[str, PlaybookRun]:
    """site.yml with each bad input, all at once: none may change anything, so they can
    share the clean hosts, and the suite waits for one run instead of six in a row."""
    first, second = lab.hosts
    unsharded = lab.inventory(
        Path(lab.workdir) / "unsharded.json",
        group="staging",
        host_vars={
            first.name: {"shard_ids": [0], "shard_count": 2},
            second.name: {"shard_count": 2},
        },
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(BAD_INPUTS)) as pool:
        runs = {
            case: pool.submit(
                ansible_bg.playbook,
                "site.yml",
                inventory=unsharded if case == "host-without-shard-ids" else inventory,
                extra_vars=bot_vars(discord_fake, release, **overrides),
            )
            for case, overrides in BAD_INPUTS.items()
        }
        return {case: run.result() for case, run in runs.items()}


def assert_untouched(lab: Lab) -> None:
    for host in lab.hosts:
        probe = lab.ssh(
            host, "test -e /etc/openclaw-voice || test -e /opt/openclaw-voice", check=False
        )
        assert probe.returncode == 1, f"{host.name} was changed by a failed preflight"


def test_0_preflight_unknown_environment(lab: Lab, preflight_runs: dict[str, PlaybookRun]) -> None:
    result = preflight_runs["unknown-environment"]
    assert result.returncode != 0
    assert "Unknown or empty environment qa" in result.output
    assert "-e env=<staging|production|local>" in result.output
    assert_untouched(lab)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param(case, message, id=case)
        for case, message in {
            "missing-vault-secret": "Secret TTS_API_KEY is missing for env=staging",
            "placeholder-vault-secret": "Secret DISCORD_TOKEN is still the CHANGE-ME placeholder",
            "wheel-version-mismatch": "The release asks for version 9.9.9 but",
            "not-enough-disk": "the release needs 1000000000 MiB",
            "stop-timeout-shorter-than-drain": "DRAIN_SECONDS=10 does not fit "
            "openclaw_voice_timeout_stop_sec=20",
            "keep-releases-not-a-number": "openclaw_voice_keep_releases=all is not a whole",
        }.items()
    ],
)
def test_0_preflight_bad_input_fails_before_any_change(
    lab: Lab, preflight_runs: dict[str, PlaybookRun], case: str, message: str
) -> None:
    result = preflight_runs[case]
    assert result.returncode != 0
    assert message in result.output, result.output[-4000:]
    for host in lab.hosts:
        assert result.recap[host.name]["changed"] == 0, result.recap
    assert_untouched(lab)


def test_0_preflight_host_without_shard_ids(
    lab: Lab, preflight_runs: dict[str, PlaybookRun]
) -> None:
    result = preflight_runs["host-without-shard-ids"]
    second = lab.hosts[1]
    assert result.returncode != 0
    assert f"Sharding is on (shard_count=2) but host {second.name} has no shard_ids" in (
        result.output
    )
    assert_untouched(lab)
    note("preflight_cases_seconds", round(max(run.seconds for run in preflight_runs.values()), 1))


@pytest.fixture(scope="module")
def rig(
    lab: Lab, ansible_bg: Ansible, inventory: Path, discord_fake: Discord, releases: Releases
) -> Rig:
    """The lab provisioned by site.yml with the first release: scenario 1."""
    provisioned = ansible_bg.playbook(
        "site.yml", inventory=inventory, extra_vars=bot_vars(discord_fake, releases.first)
    )
    assert_ok(provisioned)
    logs = ansible_bg.workdir / "playbooks"
    return Rig(lab, ansible_bg, inventory, discord_fake, releases, provisioned, logs)


def test_1_first_deploy_from_site_yml(rig: Rig) -> None:
    note("site_from_clean_seconds", round(rig.provisioned.seconds, 1))
    active_everywhere(rig.lab, "blue", rig.releases.first.version)
    for host in rig.lab.hosts:
        assert [entry["outcome"] for entry in history(rig.lab, host)] == ["provisioned"]
        assert (
            rig.lab.ssh(
                host, "systemctl is-active openclaw-voice@green", check=False
            ).stdout.strip()
            != "active"
        )


def test_1_second_site_run_changes_nothing(rig: Rig) -> None:
    again = rig.playbook("site.yml", rig.releases.first)
    assert_ok(again)
    for host in rig.lab.hosts:
        assert again.recap[host.name]["changed"] == 0, again.output[-10000:]
        assert again.recap[host.name]["failed"] == 0
    note("site_again_seconds", round(again.seconds, 1))


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


def test_1_active_slot_runs_as_openclaw_with_the_hardening(rig: Rig) -> None:
    lab = rig.lab
    for host in lab.hosts:
        slot = deploy_state(lab, host)["active_slot"]
        values = show(
            lab,
            host,
            f"openclaw-voice@{slot}.service",
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
        assert f"/etc/openclaw-voice/{slot}.env" in values["EnvironmentFiles"]
        assert "/etc/openclaw-voice/secrets.env" in values["EnvironmentFiles"]
        # The running bot itself: user, no new privileges, seccomp, no capabilities.
        pid = values["MainPID"]
        status = lab.ssh(host, f"cat /proc/{pid}/status").stdout
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        owner = lab.ssh(host, f"stat -c %U /proc/{pid}").stdout.strip()
        assert owner == "openclaw"
        assert fields["NoNewPrivs"].strip() == "1"
        assert fields["Seccomp"].strip() == "2"
        assert int(fields["CapBnd"].strip(), 16) == 0
        assert int(fields["CapEff"].strip(), 16) == 0


def test_1_files_owners_and_modes(rig: Rig) -> None:
    lab = rig.lab
    for host in lab.hosts:
        slot = deploy_state(lab, host)["active_slot"]
        expected = {
            "/etc/openclaw-voice/secrets.env": "600 root root",
            f"/etc/openclaw-voice/{slot}.env": "640 root openclaw",
            "/etc/openclaw-voice": "750 root openclaw",
            "/var/lib/openclaw-voice": "750 openclaw openclaw",
            f"/opt/openclaw-voice/{slot}/venv/bin/openclaw-voice": "755 root root",
        }
        for path, mode in expected.items():
            found = lab.ssh(host, f"stat -c '%a %U %G' {path}").stdout.strip()
            assert found == mode, path
        shell = lab.ssh(host, "getent passwd openclaw").stdout.strip().split(":")[-1]
        assert shell == "/usr/sbin/nologin"
        # The slot's venv holds the release, and that is what the running bot reports.
        cli = lab.ssh(host, f"/opt/openclaw-voice/{slot}/venv/bin/openclaw-voice --version")
        health = lab.ssh(host, f"curl -s http://127.0.0.1:{SLOT_PORTS[slot]}/health").stdout
        assert cli.stdout.split()[-1] == json.loads(health)["version"]
        assert json.loads(health)["version"] == rig.releases.first.version


def test_1_haproxy_config_is_valid(rig: Rig) -> None:
    for host in rig.lab.hosts:
        check = rig.lab.ssh(host, "haproxy -c -f /etc/haproxy/haproxy.cfg")
        assert "Configuration file is valid" in check.stdout + check.stderr
        assert rig.lab.ssh(host, "systemctl is-active haproxy").stdout.strip() == "active"


def test_1_watchdog_restarts_a_hung_slot(rig: Rig) -> None:
    lab = rig.lab
    host = lab.hosts[1]
    slot = deploy_state(lab, host)["active_slot"]
    unit = f"openclaw-voice@{slot}.service"
    before = show(lab, host, unit, "MainPID", "NRestarts")
    since = lab.ssh(host, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    lab.ssh(host, f"kill -STOP {before['MainPID']}")
    stopped = time.monotonic()
    wait_for(
        lambda: restarted(lab, host, unit, before),
        f"the watchdog to restart the SIGSTOPped {unit}",
        WATCHDOG_DEADLINE,
    )
    restart_seconds = time.monotonic() - stopped
    journal = lab.ssh(host, f"journalctl --no-pager -u {unit} --since '{since}'").stdout
    # systemd names the cause: the pings stopped, not a crash or a kill.
    assert "Watchdog timeout" in journal, journal[-3000:]
    # The new process takes the active role back (SLOT_ROLE, the free lock): served again.
    wait_for(lambda: serving_again(lab, host, slot), f"{unit} serving again", BACK_DEADLINE)
    assert deploy_state(lab, host)["active_slot"] == slot
    note("watchdog_restart_seconds", round(restart_seconds, 1))
    note("watchdog_serving_again_seconds", round(time.monotonic() - stopped, 1))


def test_2_deploy_under_load_with_faults_moves_the_bot_and_answers_each_command_once(
    rig: Rig,
) -> None:
    """The deploy under load, with the fake Discord answering every REST call slowly and
    dropping every gateway connection (resumable) as soon as the first host's new slot
    has logged in: the active slots and that new standby resume, the deploy goes on."""
    fake = rig.discord.threaded.fake
    guild = rig.discord.guilds[0]  # served by the first host
    channel = guild.voice_channels()[0]
    alice = rig.discord.call(fake.add_simulated_user("alice", guild=guild, channel=channel))
    started = rig.discord.call(
        fake.invoke_slash_command("voice start", user=alice.user, guild=guild)
    )
    rig.discord.wait_answered(started)
    host = rig.lab.hosts[0]
    wait_for(
        lambda: (slot_status(rig.lab, host, "blue") or {}).get("active_sessions") == 1,
        "blue to hold the voice session",
        20,
    )

    since = rig.discord.mark()
    # The first host's new slot (green) identifying for shard 0: the deploy's standby is up.
    new_standby = rig.discord.after(since, lambda event: event.data["shard"][0] == 0)
    with (
        slow_rest(rig.discord, REST_DELAY),
        GatewayDrop(rig.discord, "gateway_identify", new_standby) as drop,
        Load(rig.lab.hosts) as load,
        Commands(rig.discord, guild, alice.user) as commands,
    ):
        result = rig.playbook("deploy.yml", rig.releases.second)
    assert_ok(result)
    commands.wait_answered()

    # Every bot connected when the gateway dropped resumed that session (RESUME accepted,
    # missed events replayed): blue on both hosts and the first host's new green.
    dropped = drop.dropped()
    assert len(dropped) == HOSTS + 1, dropped
    for session_id in dropped:
        rig.discord.wait_event("gateway_resumed", since, of_session(session_id), within=30)
    assert fake.recorder.of_kind("gateway_resume_rejected") == []
    assert load.failures == [], load.failures[:20]
    assert load.requests > 100
    active_everywhere(rig.lab, "green", rig.releases.second.version)
    # The voice channel moved with the active role: green holds it, blue holds nothing.
    assert guild.voice_states[fake.world.bot.id].channel_id == channel.id
    wait_for(
        lambda: (slot_status(rig.lab, host, "green") or {}).get("active_sessions") == 1,
        "green to hold the voice session",
        20,
    )
    assert (slot_status(rig.lab, host, "blue") or {}).get("active_sessions") == 0
    assert (slot_status(rig.lab, host, "blue") or {}).get("slot_role") == "standby"
    # Every command sent while the roles flipped was answered exactly once.
    assert len(commands.sent) >= 5
    assert [len(record.callbacks) for record in commands.sent] == [1] * len(commands.sent)
    attempts = rig.discord.callback_attempts(commands.sent)
    assert attempts == [1] * len(commands.sent), attempts
    for name in (f"{host.name}/blue", f"{host.name}/green"):
        assert load.served[name] > 0, load.served
    per_host = [history(rig.lab, host)[-1] for host in rig.lab.hosts]
    for entry in per_host:
        assert entry["outcome"] == "deployed"
        assert entry["watch"]["passed"] is True
    # The deploy ran the release pruning (tasks/prune.yml) and kept both slots' releases.
    assert "Remove releases no slot holds, keeping the newest 2" in result.output
    held = sorted({rig.releases.first.version, rig.releases.second.version})
    for host in rig.lab.hosts:
        assert sorted(rig.lab.ssh(host, "ls /opt/openclaw-voice/releases").stdout.split()) == held
    note("deploy_seconds_per_host", [float(entry["seconds"]) for entry in per_host])
    note("flip_seconds_per_host", [float(entry["flip_seconds"]) for entry in per_host])
    note("deploy_playbook_seconds", round(result.seconds, 1))
    note("deploy_load_requests", load.requests)
    note("deploy_commands_during", len(commands.sent))
    note("deploy_faults", {"rest_delay_seconds": REST_DELAY, "gateway_drops": 1})


def test_sigkill_of_the_active_slot_systemd_restarts_it_and_it_rejoins(rig: Rig) -> None:
    """The active bot killed outright on the first host (its guild's voice session on it):
    systemd restarts it, it takes the active role back and rejoins the voice channel; while
    it is down HAProxy sends nothing anywhere (the standby is not ready and has weight 0)."""
    lab, fake = rig.lab, rig.discord.threaded.fake
    host = lab.hosts[0]
    guild = rig.discord.guilds[0]
    channel = guild.voice_channels()[0]
    slot = deploy_state(lab, host)["active_slot"]
    standby = next(other for other in SLOT_PORTS if other != slot)
    unit = f"openclaw-voice@{slot}.service"
    assert (slot_status(lab, host, slot) or {}).get("active_sessions") == 1
    before = show(lab, host, unit, "MainPID", "NRestarts")
    # Rejoined: the fake completes a new voice connection for the guild (its UDP session
    # set up), timed on the fake's loop when it happens.
    rejoin = rig.discord.expect(
        "voice_select_protocol",
        rig.discord.mark(),
        lambda event: event.data["guild_id"] == guild.id,
        within=BACK_DEADLINE,
    )
    try:
        killed = time.monotonic()
        lab.ssh(host, f"kill -KILL {before['MainPID']}")
        # /health answers 200 on either slot: a 503 is HAProxy's own, no server took it.
        wait_for(lambda: front(host, "/health")[0] == 503, "HAProxy to take the slot out", 15)
        wait_for(
            lambda: restarted(lab, host, unit, before),
            f"systemd to restart {unit} after SIGKILL",
            RESTART_DEADLINE,
        )
        wait_for(lambda: serving_again(lab, host, slot), f"{unit} serving again", BACK_DEADLINE)
        serving = time.monotonic() - killed
        rejoined = rejoin.result(timeout=BACK_DEADLINE + 5) - killed
    finally:
        rejoin.cancel()

    async def bot_channel() -> int | None:
        state = guild.voice_states.get(fake.world.bot.id)
        return state.channel_id if state is not None else None

    assert rig.discord.call(bot_channel()) == channel.id
    wait_for(
        lambda: (slot_status(lab, host, slot) or {}).get("active_sessions") == 1,
        f"{unit} to hold the voice session again",
        15,
    )
    assert (slot_status(lab, host, standby) or {}).get("slot_role") == "standby"
    assert deploy_state(lab, host)["active_slot"] == slot
    note("sigkill_serving_again_seconds", round(serving, 1))
    note("sigkill_rejoined_seconds", round(rejoined, 1))


def test_smoke_passes_through_haproxy_and_on_each_slot(rig: Rig) -> None:
    result = rig.playbook("smoke.yml", rig.releases.second)
    assert_ok(result)
    # HAProxy plus the two running slots on each host, each probed and passing.
    for host in rig.lab.hosts:
        for target in ("HAProxy", "blue", "green"):
            assert f"ok: [{host.name}] => (item={target})" in result.output, result.output[-5000:]


def test_deploying_the_active_version_changes_nothing(rig: Rig) -> None:
    before = [len(history(rig.lab, host)) for host in rig.lab.hosts]
    result = rig.playbook("deploy.yml", rig.releases.second)
    assert_ok(result)
    assert f"already runs {rig.releases.second.version}" in result.output
    assert [len(history(rig.lab, host)) for host in rig.lab.hosts] == before
    for host in rig.lab.hosts:
        assert result.recap[host.name]["changed"] == 0


def test_4_rollback_to_the_previous_version(rig: Rig) -> None:
    with Load(rig.lab.hosts) as load:
        result = rig.playbook("rollback.yml", rig.releases.second)
    assert_ok(result)
    assert load.failures == [], load.failures[:20]
    active_everywhere(rig.lab, "blue", rig.releases.first.version)
    assert history(rig.lab, rig.lab.hosts[0])[-1]["outcome"] == "rolled back"
    note("rollback_playbook_seconds", round(result.seconds, 1))
    note("rollback_seconds_per_host", round(result.seconds / HOSTS, 1))
    note(
        "rollback_flip_seconds_per_host",
        [float(history(rig.lab, host)[-1]["flip_seconds"]) for host in rig.lab.hosts],
    )


def test_haproxy_unreachable_fails_before_touching_slots(rig: Rig) -> None:
    host = rig.lab.hosts[1]
    before = [deploy_state(rig.lab, each) for each in rig.lab.hosts]
    rig.lab.ssh(host, "systemctl stop haproxy")
    try:
        result = rig.playbook("deploy.yml", rig.releases.second)
    finally:
        rig.lab.ssh(host, "systemctl start haproxy")
    assert result.returncode != 0
    assert f"HAProxy on {host.name} is not usable for a flip, nothing was changed" in result.output
    assert "Traceback" not in result.output
    assert [deploy_state(rig.lab, each) for each in rig.lab.hosts] == before
    for each in rig.lab.hosts:
        assert (
            rig.lab.ssh(
                each, "systemctl is-active openclaw-voice@green", check=False
            ).stdout.strip()
            == "active"
        )


def test_3_broken_build_is_reverted_and_the_run_stops(rig: Rig) -> None:
    wait_for(
        lambda: all(haproxy_weights(rig.lab, host)["blue"] == 100 for host in rig.lab.hosts),
        "HAProxy back on every host",
        20,
    )
    first, second = rig.lab.hosts
    with Load(rig.lab.hosts) as load:
        result = rig.playbook("deploy.yml", rig.releases.broken)
    assert result.returncode != 0
    assert load.failures == [], load.failures[:20]
    assert "Traceback" not in result.output
    broken, old = rig.releases.broken.version, rig.releases.first.version
    # The first host took the build (it is only broken on shard 1); the second reverted.
    assert deploy_state(rig.lab, first)["active_slot"] == "green"
    assert (slot_status(rig.lab, first, "green") or {}).get("version") == broken
    active = deploy_state(rig.lab, second)
    assert active["active_slot"] == "blue"
    status = slot_status(rig.lab, second, "blue")
    assert status is not None
    assert (status["slot_role"], status["version"], status["ready"]) == ("active", old, True)
    assert haproxy_weights(rig.lab, second) == {"blue": 100, "green": 0}
    assert (
        rig.lab.ssh(second, "systemctl is-active openclaw-voice@green", check=False).stdout.strip()
        == "inactive"
    )
    assert (
        rig.lab.ssh(
            second, "test -x /opt/openclaw-voice/green/venv/bin/openclaw-voice", check=False
        ).returncode
        == 0
    )
    # The failure names the cause, the revert, and which host runs which version.
    # The YAML callback wraps long messages: compare with single spaces.
    output = " ".join(result.output.split())
    summary = output[output.find("Deploy of ") :][:3000]
    assert "broken build (deploy test)" in summary, result.output[-8000:]
    assert f"{first.name}: {broken} (deployed, slot green)" in summary, summary
    assert f"{second.name}: {old} (reverted, slot blue)" in summary, summary
    entry = history(rig.lab, second)[-1]
    assert entry["outcome"] == "reverted"
    note("revert_seconds", float(entry["revert_seconds"]))


def test_rollback_of_one_version_flips_only_the_hosts_running_it(rig: Rig) -> None:
    first, second = rig.lab.hosts
    before = deploy_state(rig.lab, second)
    result = rig.playbook(
        "rollback.yml", rig.releases.first, rollback_only_version=rig.releases.broken.version
    )
    assert_ok(result)
    assert f"{second.name} runs {rig.releases.first.version}, not" in result.output
    assert deploy_state(rig.lab, second) == before
    state = deploy_state(rig.lab, first)
    assert state["active_slot"] == "blue"
    assert (slot_status(rig.lab, first, "blue") or {}).get("version") == rig.releases.first.version


def test_rollback_refuses_when_a_standby_is_down(rig: Rig) -> None:
    before = [deploy_state(rig.lab, host) for host in rig.lab.hosts]
    result = rig.playbook("rollback.yml", rig.releases.first)
    assert result.returncode != 0
    second = rig.lab.hosts[1]
    assert f"Cannot roll back {second.name}: the standby slot green" in result.output
    assert "nothing was changed" in result.output
    assert [deploy_state(rig.lab, host) for host in rig.lab.hosts] == before


def test_a_lost_host_is_rebuilt_from_its_backup_and_rejoins_its_channel(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """docs/disaster-recovery.md, timed: the RTO of rebuilding a host from scratch."""
    lab, fake = rig.lab, rig.discord.threaded.fake
    host = lab.hosts[1]  # shard 1; the fake Discord listens on the first host's network
    guild = rig.discord.guilds[1]
    channel = guild.voice_channels()[0]
    bob = rig.discord.call(fake.add_simulated_user("bob", guild=guild, channel=channel))
    started = rig.discord.call(fake.invoke_slash_command("voice start", user=bob.user, guild=guild))
    rig.discord.wait_answered(started)
    wait_for(
        lambda: (slot_status(lab, host, "blue") or {}).get("active_sessions") == 1,
        "the second host's bot in the voice channel",
        30,
    )

    backups = tmp_path_factory.mktemp("backups")
    assert_ok(rig.playbook("backup.yml", rig.releases.first, backup_dest=str(backups)))
    backup = backups / host.name / "state.sqlite3"
    assert backup.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(backup) as db:
        rows = db.execute("SELECT guild_id, channel_id, desired FROM guild_voice_state").fetchall()
    assert (guild.id, channel.id, 1) in rows

    lost_at = time.monotonic()
    rebuild(lab, host)  # the machine is gone; a fresh one gets its name and address
    assert lab.ssh(host, "test -e /opt/openclaw-voice", check=False).returncode != 0
    rig.discord.trust(lab, host)  # the test's stand-in for Discord's public CA
    shutil.rmtree(rig.ansible.workdir / "cp", ignore_errors=True)  # ssh masters of the old one
    identifies = len(fake.recorder.of_kind("voice_identify"))
    # Only the rebuilt host restores (the other keeps its database): templated per host.
    restore = (
        f"{{{{ '{backups}/' ~ inventory_hostname ~ '/state.sqlite3' "
        f"if inventory_hostname == '{host.name}' else '' }}}}"
    )
    result = rig.playbook("site.yml", rig.releases.first, openclaw_voice_restore_state=restore)
    assert_ok(result)
    # The surviving host, provisioned and since deployed and rolled back: nothing to change.
    assert result.recap[lab.hosts[0].name]["changed"] == 0, result.output[-10000:]
    wait_for(
        lambda: (slot_status(lab, host, "blue") or {}).get("active_sessions") == 1,
        "the rebuilt host's bot to rejoin the channel from the restored state",
        60,
    )
    rto = time.monotonic() - lost_at
    assert len(fake.recorder.of_kind("voice_identify")) > identifies  # a new voice connection
    assert guild.voice_states[fake.world.bot.id].channel_id == channel.id
    timer = lab.ssh(host, "systemctl is-enabled openclaw-voice-backup.timer").stdout.strip()
    assert timer == "enabled"
    note("dr_rebuild_playbook_seconds", round(result.seconds, 1))
    note("dr_rto_seconds", round(rto, 1))


def test_rollback_of_a_host_whose_active_slot_is_down(rig: Rig) -> None:
    """The active slot has failed for good (its unit stopped, as after a crash loop): the
    rollback does not refuse, keeps that slot stopped (no second active bot when it comes
    back) and promotes the standby, which rejoins the voice channel."""
    lab, fake = rig.lab, rig.discord.threaded.fake
    host = lab.hosts[0]
    guild = rig.discord.guilds[0]
    channel = guild.voice_channels()[0]
    before = deploy_state(lab, host)
    down = before["active_slot"]
    standby = next(other for other in SLOT_PORTS if other != down)
    assert (slot_status(lab, host, down) or {}).get("active_sessions") == 1
    lab.ssh(host, f"systemctl stop openclaw-voice@{down}")

    result = rig.playbook("rollback.yml", rig.releases.first, "--limit", f"localhost,{host.name}")

    assert_ok(result)
    output = " ".join(result.output.split())
    version = before["slots"][down]
    assert f"slot {down} ({version}) was down and is left stopped" in output, output[-5000:]
    assert deploy_state(lab, host)["active_slot"] == standby
    state = lab.ssh(host, f"systemctl is-active openclaw-voice@{down}", check=False).stdout
    assert state.strip() == "inactive"
    entry = history(lab, host)[-1]
    assert (entry["outcome"], entry["previous"], entry["previous_was_down"]) == (
        "rolled back",
        version,
        True,
    )
    assert haproxy_weights(lab, host) == {standby: 100, down: 0}
    wait_for(
        lambda: (slot_status(lab, host, standby) or {}).get("active_sessions") == 1,
        "the promoted slot to rejoin the voice channel",
        30,
    )
    assert guild.voice_states[fake.world.bot.id].channel_id == channel.id
    note("rollback_from_down_playbook_seconds", round(result.seconds, 1))
