"""Scenario controls: faults the fake injects on demand, driven by one seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class RestFault:
    """Answer the next ``count`` matching requests with ``status`` (429 carries retry_after)."""

    status: int
    count: int = 1
    path_contains: str = ""
    method: str | None = None
    retry_after: float = 0.05
    is_global: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.count <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path_contains in path


@dataclass
class RestControls:
    delay: float = 0.0
    faults: list[RestFault] = field(default_factory=list)

    def take_fault(self, method: str, path: str) -> RestFault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                return fault
        return None


@dataclass
class PacketFaults:
    """Faults applied to the fake's outgoing RTP (simulated users' speech).

    Percentages are 0-100. ``jitter`` delays a packet by up to that many seconds;
    ``reorder`` holds a packet back and sends it after the next one.
    """

    loss: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    jitter: float = 0.0
    malformed: float = 0.0
    truncated: float = 0.0
    unknown_ssrc: float = 0.0
    rtcp: float = 0.0

    def any_active(self) -> bool:
        return any(
            value > 0
            for value in (
                self.loss,
                self.reorder,
                self.duplicate,
                self.jitter,
                self.malformed,
                self.truncated,
                self.unknown_ssrc,
                self.rtcp,
            )
        )


@dataclass
class VoiceFaults:
    """Joins that Discord leaves unanswered, counted down one join at a time.

    ``withhold_server_update``: the next N op 4 joins get their VOICE_STATE_UPDATE but no
    VOICE_SERVER_UPDATE (no voice server allocated). ``withhold_ready``: the next N voice
    IDENTIFYs get no READY (a stalled voice server); the websocket stays open.
    """

    withhold_server_update: int = 0
    withhold_ready: int = 0


class Controls:
    """All scenario knobs of one fake, sharing a seeded RNG so runs are reproducible."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.rest = RestControls()
        self.packets = PacketFaults()
        self.voice = VoiceFaults()

    def chance(self, percent: float) -> bool:
        return percent > 0 and self.random.random() * 100.0 < percent
