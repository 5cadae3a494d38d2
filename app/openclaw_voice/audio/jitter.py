"""Per-user jitter buffer: reorders Opus packets by sequence number for a 20 ms playout clock."""

from __future__ import annotations

from dataclasses import dataclass

from openclaw_voice.audio.drops import DropCounter
from openclaw_voice.audio.packets import OpusPacket

FRAME_SECONDS = 0.020
SEQUENCE_MODULUS = 1 << 16
_HALF = SEQUENCE_MODULUS // 2


@dataclass(frozen=True, slots=True)
class Gap:
    """A playout slot whose packet is missing while later ones are here (lost or very late)."""

    sequence: int
    next_payload: bytes | None


@dataclass(frozen=True, slots=True)
class JitterSettings:
    """Tuning of one jitter buffer."""

    target_delay: float = 0.040
    capacity: int = 50
    max_depth: int = 10
    resync_after: int = 3
    absurd_jump: int = 1_000
    max_rate: float = 2.0


class JitterBuffer:
    """Holds one user's packets until their playout slot; `pop(now)` yields one slot per tick."""

    def __init__(
        self, settings: JitterSettings | None = None, *, drops: DropCounter | None = None
    ) -> None:
        self.settings = settings or JitterSettings()
        self.drops = drops or DropCounter()
        self._packets: dict[int, OpusPacket] = {}
        self._highest: int | None = None  # highest extended sequence number seen
        self._next: int | None = None  # extended sequence number of the next playout slot
        self._playing = False
        self._jump: tuple[int, int] | None = None  # (last jumped raw sequence, run length)
        self._tokens = float(self.settings.capacity)
        self._last_refill: float | None = None

    @property
    def depth(self) -> int:
        """Packets currently buffered."""
        return len(self._packets)

    @property
    def playing(self) -> bool:
        """True while slots are being played out (False while priming or after an underrun)."""
        return self._playing

    @staticmethod
    def _extend(sequence: int, highest: int) -> int:
        """Unwraps a 16-bit sequence number to the extended number nearest `highest`."""
        delta = (sequence - highest + _HALF) % SEQUENCE_MODULUS - _HALF
        return highest + delta

    def _admit(self, arrival: float) -> bool:
        """Token bucket: at most `max_rate` x real time sustained, bursts up to capacity."""
        if self._last_refill is not None:
            elapsed = max(0.0, arrival - self._last_refill)
            rate = self.settings.max_rate / FRAME_SECONDS
            self._tokens = min(float(self.settings.capacity), self._tokens + elapsed * rate)
        self._last_refill = arrival
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _resync(self, ext: int) -> None:
        """Forgets the old stream position; the next packet primes playout afresh."""
        self.drops.drop("resync", len(self._packets))
        self._packets.clear()
        self._highest = ext
        self._next = None
        self._playing = False

    def push(self, packet: OpusPacket) -> bool:
        """Buffers a packet; returns False (and counts why) when it is dropped."""
        if not self._admit(packet.arrival):
            self.drops.drop("rate")
            return False
        sequence = packet.sequence % SEQUENCE_MODULUS
        highest = sequence if self._highest is None else self._highest
        ext = self._extend(sequence, highest)
        if abs(ext - highest) > self.settings.absurd_jump:
            run = 1
            if self._jump is not None and (sequence - self._jump[0]) % SEQUENCE_MODULUS <= 3:
                run = self._jump[1] + 1
            self._jump = (sequence, run)
            if run < self.settings.resync_after:
                self.drops.drop("jump")
                return False
            self._jump = None
            self._resync(sequence)
            ext = highest = sequence
        else:
            self._jump = None
        if self._next is not None and ext < self._next:
            self.drops.drop("late")
            return False
        if ext in self._packets:
            self.drops.drop("duplicate")
            return False
        if len(self._packets) >= self.settings.capacity:
            self.drops.drop("overflow")
            return False
        self._packets[ext] = packet
        self._highest = max(highest, ext)
        return True

    def pop(self, now: float) -> OpusPacket | Gap | None:
        """The next playout slot: a packet, a Gap to conceal, or None (idle, priming, underrun)."""
        if not self._packets or self._highest is None:
            self._playing = False
            return None
        if not self._playing or self._next is None:
            first = min(self._packets)
            if now < self._packets[first].arrival + self.settings.target_delay:
                return None
            self._playing = True
            self._next = first
        slot = self._trim(self._next, self._highest)
        self._next = slot + 1
        packet = self._packets.pop(slot, None)
        if packet is not None:
            return packet
        following = self._packets.get(slot + 1)
        return Gap(slot % SEQUENCE_MODULUS, following.payload if following else None)

    def _trim(self, slot: int, highest: int) -> int:
        """Skips ahead when too much is buffered, so a burst after a stall cannot add latency."""
        excess = highest - slot + 1 - self.settings.max_depth
        if excess <= 0:
            return slot
        skip_to = slot + excess
        stale = [ext for ext in self._packets if ext < skip_to]
        for ext in stale:
            del self._packets[ext]
        self.drops.drop("overflow", len(stale))
        return skip_to

    def clear(self) -> None:
        """Drops everything buffered (teardown)."""
        self._packets.clear()
        self._playing = False
