"""The jitter buffer: reordering, late and duplicate drops, wraparound, resync, caps."""

from __future__ import annotations

from openclaw_voice.audio.jitter import Gap, JitterBuffer, JitterSettings
from openclaw_voice.audio.packets import OpusPacket


def _packet(sequence: int, arrival: float) -> OpusPacket:
    return OpusPacket(sequence % 65536, sequence * 960, bytes([sequence % 256]), arrival)


def _drain(buffer: JitterBuffer, start: float, ticks: int) -> list[OpusPacket | Gap | None]:
    return [buffer.pop(start + i * 0.02) for i in range(ticks)]


def _sequences(items: list[OpusPacket | Gap | None]) -> list[int | str | None]:
    out: list[int | str | None] = []
    for item in items:
        if isinstance(item, OpusPacket):
            out.append(item.sequence)
        elif isinstance(item, Gap):
            out.append(f"gap{item.sequence}")
        else:
            out.append(None)
    return out


def test_waits_for_the_target_delay_then_plays_in_order() -> None:
    buffer = JitterBuffer(JitterSettings(target_delay=0.040))
    for sequence, arrival in ((10, 1.000), (12, 1.010), (11, 1.015), (13, 1.060)):
        assert buffer.push(_packet(sequence, arrival))
    assert buffer.pop(1.020) is None  # still priming
    assert _sequences(_drain(buffer, 1.040, 5)) == [10, 11, 12, 13, None]


def test_gap_carries_the_next_payload_for_fec() -> None:
    buffer = JitterBuffer()
    for sequence in (1, 3, 4):
        buffer.push(_packet(sequence, 0.0))
    items = _drain(buffer, 1.0, 4)
    assert _sequences(items) == [1, "gap2", 3, 4]
    gap = items[1]
    assert isinstance(gap, Gap)
    assert gap.next_payload == bytes([3])


def test_two_lost_packets_give_a_gap_without_then_with_fec_payload() -> None:
    buffer = JitterBuffer()
    for sequence in (1, 4):
        buffer.push(_packet(sequence, 0.0))
    items = _drain(buffer, 1.0, 4)
    assert _sequences(items) == [1, "gap2", "gap3", 4]
    assert isinstance(items[1], Gap)
    assert items[1].next_payload is None
    assert isinstance(items[2], Gap)
    assert items[2].next_payload == bytes([4])


def test_late_packet_is_dropped_and_counted() -> None:
    buffer = JitterBuffer()
    buffer.push(_packet(1, 0.0))
    buffer.push(_packet(3, 0.0))
    assert _sequences(_drain(buffer, 1.0, 2)) == [1, "gap2"]
    assert not buffer.push(_packet(2, 1.05))
    assert buffer.drops.counts["late"] == 1
    # late even after an underrun: the playout position is remembered
    assert _sequences(_drain(buffer, 1.1, 2)) == [3, None]
    assert not buffer.push(_packet(2, 1.2))
    assert buffer.drops.counts["late"] == 2


def test_duplicate_is_dropped_and_counted() -> None:
    buffer = JitterBuffer()
    assert buffer.push(_packet(5, 0.0))
    assert not buffer.push(_packet(5, 0.001))
    assert buffer.drops.counts["duplicate"] == 1
    assert _sequences(_drain(buffer, 1.0, 2)) == [5, None]


def test_sequence_wraps_from_65535_to_0() -> None:
    buffer = JitterBuffer()
    for sequence in (65534, 0, 65535, 1):  # reordered across the wrap
        assert buffer.push(_packet(sequence, 0.0))
    assert _sequences(_drain(buffer, 1.0, 5)) == [65534, 65535, 0, 1, None]
    assert buffer.push(_packet(2, 1.2))  # after the wrap, not "late"
    assert not buffer.push(_packet(65535, 1.2))  # the old side of the wrap is late now


def test_absurd_jump_is_dropped_unless_the_stream_really_moved() -> None:
    buffer = JitterBuffer()
    buffer.push(_packet(100, 0.0))
    assert _sequences(_drain(buffer, 1.0, 1)) == [100]
    assert not buffer.push(_packet(30_000, 1.02))  # one wild packet: dropped
    assert buffer.push(_packet(101, 1.03))
    assert buffer.drops.counts["jump"] == 1
    # a run of consistent packets at the new position resyncs
    assert not buffer.push(_packet(40_000, 1.04))
    assert not buffer.push(_packet(40_001, 1.06))
    assert buffer.push(_packet(40_002, 1.08))
    assert buffer.drops.counts["resync"] == 1  # packet 101 discarded
    assert _sequences(_drain(buffer, 2.0, 2)) == [40_002, None]


def test_capacity_and_depth_are_bounded() -> None:
    buffer = JitterBuffer(JitterSettings(capacity=20, max_depth=5, max_rate=1000))
    accepted = sum(buffer.push(_packet(seq, seq * 1e-4)) for seq in range(100))
    assert accepted == 20
    assert buffer.depth == 20
    assert buffer.drops.counts["overflow"] == 80
    first = buffer.pop(1.0)  # skips ahead so that only max_depth slots remain
    assert isinstance(first, OpusPacket)
    assert first.sequence == 15
    assert buffer.depth == 4


def test_ten_times_real_time_sender_is_rate_limited() -> None:
    buffer = JitterBuffer(JitterSettings(capacity=50))
    accepted = 0
    for i in range(5_000):  # 10 s of packets at 10x real time (one every 2 ms)
        accepted += buffer.push(_packet(i, i * 0.002))
        if i % 10 == 0:
            buffer.pop(i * 0.002)
    # 2x real time sustained (100 packets/s over 10 s) plus the initial burst
    assert accepted <= 100 * 10 + 50 + 1
    assert buffer.drops.counts["rate"] >= 3_900
    assert buffer.depth <= 50


def test_clear_forgets_everything() -> None:
    buffer = JitterBuffer()
    buffer.push(_packet(1, 0.0))
    buffer.clear()
    assert buffer.depth == 0
    assert buffer.pop(1.0) is None
    assert not buffer.playing
