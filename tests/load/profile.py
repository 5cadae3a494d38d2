"""What a load run does: sizes, conversation pacing, provider latencies and injected faults.

A :class:`LoadProfile` is built by the CLI (``python -m tests.load.run``) or a test, passed
to the bot's process as JSON, and written into the report, so a report says exactly what
produced it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from openclaw_voice.errors import ErrorKind, Stage

FaultStage = Literal["stt", "agent", "tts"]
# What the harness can do to the fake Discord during a conversation.
# Carried out by tests/load/events.py.
EVENTS = {
    "gateway-resume": "every gateway websocket closed; the sessions stay resumable",
    "gateway-drop": "every gateway websocket closed and its session forgotten (re-IDENTIFY)",
    "gateway-reconnect": "op 7: Discord asks the client to reconnect and resume",
    "voice-close-4006": "the first guild's voice websocket closed with 4006 (session invalid), "
    "between its turns; the harness waits for the rejoin",
    "voice-close-4015": "the same with 4015 (voice server crashed)",
    "voice-close-4021": "the same with 4021 (rate limited): the bot comes back only after "
    "VOICE_REJOIN_RETRY_SECONDS",
    "sigterm": "SIGTERM to the bot while the first guild's answer is heard; no new questions",
    "sigterm-mid-question": "SIGTERM to the bot a second into the last guild's next question; "
    "no new questions",
    "clock-forward": "the bot's wall clock jumps forward an hour (monotonic clock unchanged)",
    "clock-back": "the bot's wall clock jumps back an hour",
    # Storage faults (tests/load/storage.py): the sandboxed ones need root.
    "state-lock": "another connection holds an exclusive lock on the bot's state database",
    "state-unlock": "that connection rolls back and closes: the lock is released",
    "state-readonly": "the state filesystem goes read-only (a filesystem error, as on a "
    "failing disk) until the bot exits; sandboxed",
    "disk-full": "the filesystems of the bot's state and log are filled up; sandboxed",
    "disk-freed": "the filler is deleted: space again",
    **{
        f"{stage}-{state}": f"{stage}'s first provider {what} (a second one is configured)"
        for stage in ("stt", "agent", "tts")
        for state, what in (("down", "fails every call with a 503"), ("up", "answers again"))
    },
}
CLOCK_EVENTS = frozenset({"clock-forward", "clock-back"})
READ_ONLY_EVENTS = frozenset({"state-readonly"})
# Events that need the bot's state and log on filesystems of their own (a mount namespace).
SANDBOX_EVENTS = READ_ONLY_EVENTS | {"disk-full", "disk-freed"}
STORAGE_EVENTS = SANDBOX_EVENTS | {"state-lock", "state-unlock"}


def outage_stages(profile: LoadProfile) -> set[str]:
    """Stages with an outage event: their chains get a second provider."""
    return {
        action.removesuffix("-down") for _, action in profile.events if action.endswith("-down")
    }


STAGES: dict[str, Stage] = {"stt": Stage.STT, "agent": Stage.AGENT, "tts": Stage.TTS}


@dataclass(frozen=True)
class Latency:
    """A log-normal latency: ``median_ms`` with spread ``sigma`` (0 = fixed), capped."""

    median_ms: float
    sigma: float = 0.35
    cap_factor: float = 4.0  # no sample above cap_factor x median

    def sample(self, rng: random.Random) -> float:
        """One latency in seconds."""
        if self.median_ms <= 0:
            return 0.0
        factor = math.exp(self.sigma * rng.gauss(0.0, 1.0)) if self.sigma > 0 else 1.0
        return min(self.median_ms * factor, self.median_ms * self.cap_factor) / 1000.0


@dataclass(frozen=True)
class Fault:
    """Provider calls of ``stage`` that fail with ``kind``, at ``rate`` (0-1) of requests.

    ``persistent``: every attempt at that request fails, so the chain gives up and the turn
    fails with the stage's code (an apology is spoken). Otherwise only the first attempt
    fails and the chain's retry succeeds: the user never notices, the provider metrics do.
    Kind ``timeout`` makes the call hang until the chain's attempt timeout cuts it (set the
    timeouts low with ``LoadProfile.settings``).
    Text-to-speech faults are only transient: a persistently failing sentence is skipped
    by the pipeline without a turn error, which the harness could not tell from a success.
    """

    stage: FaultStage
    rate: float
    kind: str = "unavailable"
    persistent: bool = True

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown fault stage {self.stage!r} (stt, agent, tts)")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("a fault rate is a fraction from 0 to 1")
        self.error_kind  # noqa: B018 - raises ValueError for an unknown kind
        if self.stage == "tts" and self.persistent:
            raise ValueError("tts faults are transient only (see Fault)")

    @property
    def error_kind(self) -> ErrorKind:
        try:
            return ErrorKind[self.kind.upper()]
        except KeyError:
            raise ValueError(f"unknown error kind {self.kind!r}") from None

    @property
    def code(self) -> int:
        return int(STAGES[self.stage]) + self.error_kind.offset

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``stage:rate[:kind[:persistent|transient]]``, e.g. ``stt:0.05:unavailable``."""
        parts = text.split(":")
        if not 2 <= len(parts) <= 4:
            raise ValueError(f"expected stage:rate[:kind[:persistent|transient]], got {text!r}")
        stage, rate = parts[0], float(parts[1])
        kind = parts[2] if len(parts) > 2 else "unavailable"
        mode = parts[3] if len(parts) > 3 else ("transient" if stage == "tts" else "persistent")
        if mode not in ("persistent", "transient"):
            raise ValueError(f"expected persistent or transient, got {mode!r}")
        if stage not in STAGES:
            raise ValueError(f"unknown fault stage {stage!r} (stt, agent, tts)")
        return cls(stage, rate, kind, mode == "persistent")  # type: ignore[arg-type]


@dataclass(frozen=True)
class ProviderProfile:
    """The in-process fake providers' timing (see ``tests/load/providers.py``)."""

    stt: Latency = field(default_factory=lambda: Latency(300))
    agent_first_token: Latency = field(default_factory=lambda: Latency(400))
    token_gap: Latency = field(default_factory=lambda: Latency(20, sigma=0.2))
    tts_first_byte: Latency = field(default_factory=lambda: Latency(150))
    tts_speed: float = 5.0  # audio produced this many times faster than real time
    speech_ms_per_char: float = 60.0  # length of the fake TTS audio per character
    sentences: tuple[int, int] = (1, 2)  # sentences per answer, min and max


@dataclass(frozen=True)
class LoadProfile:
    """One load run. ``turns`` per guild, or as many as fit in ``seconds`` (a soak)."""

    guilds: int = 3
    speakers: int = 1  # simulated speakers per guild, taking turns
    turns: int | None = 3
    seconds: float | None = None
    think: tuple[float, float] = (0.5, 1.5)  # pause after a reply before the next question
    stagger: float = 3.0  # guilds start their first question within this many seconds
    providers: ProviderProfile = field(default_factory=ProviderProfile)
    faults: tuple[Fault, ...] = ()
    seed: int = 1
    shards: int | None = None  # None: one shard per 40 guilds
    log_level: str = "warning"  # the bot's, as in production
    reply_timeout: float = 30.0  # a question unanswered this long counts as unanswered
    dave: bool = True
    join_concurrency: int = 4
    # What-ifs patched into the bot's process (``tests/load/bot.py`` EXPERIMENTS): to
    # measure a change to the application before making it. Empty for real runs.
    experiments: tuple[str, ...] = ()
    # Faults on the simulated users' packets from the first question on (``PacketFaults``
    # of the fake: loss, reorder, duplicate, malformed, truncated, unknown_ssrc, rtcp in
    # percent, jitter in seconds), and extra settings for the bot (e.g. provider timeouts).
    packets: dict[str, float] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    # Disruptions during the conversation: (seconds after it starts, action), see EVENTS.
    events: tuple[tuple[float, str], ...] = ()

    def __post_init__(self) -> None:
        if self.guilds < 1 or self.speakers < 1:
            raise ValueError("at least one guild and one speaker")
        if (self.turns is None) == (self.seconds is None):
            raise ValueError("give either turns or seconds")
        unknown = [action for _, action in self.events if action not in EVENTS]
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {', '.join(EVENTS)}")

    @property
    def shard_count(self) -> int:
        return self.shards if self.shards is not None else max(1, math.ceil(self.guilds / 40))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadProfile:
        providers = dict(data["providers"])
        for name in ("stt", "agent_first_token", "token_gap", "tts_first_byte"):
            providers[name] = Latency(**providers[name])
        providers["sentences"] = tuple(providers["sentences"])
        values = dict(data)
        values["providers"] = ProviderProfile(**providers)
        values["faults"] = tuple(Fault(**fault) for fault in data["faults"])
        values["think"] = tuple(data["think"])
        values["experiments"] = tuple(data.get("experiments", ()))
        values["packets"] = dict(data.get("packets", {}))
        values["settings"] = dict(data.get("settings", {}))
        values["events"] = tuple((float(at), str(action)) for at, action in data.get("events", ()))
        return cls(**values)
