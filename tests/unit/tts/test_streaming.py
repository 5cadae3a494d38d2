"""Whole-sample re-chunking, Retry-After parsing, HTTP error mapping, request parts."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.tts.streaming import (
    SampleAligner,
    parse_retry_after,
    status_error,
    stream_parts,
    transport_error,
)


def test_aligner_carries_split_samples_over() -> None:
    aligner = SampleAligner("p", 24_000)
    data = bytes(range(20))
    out = [aligner.push(data[i : i + size]) for i, size in ((0, 1), (1, 7), (8, 3), (11, 9))]
    chunks = [chunk for chunk in out if chunk is not None]
    assert out[0] is None
    assert all(len(c.data) % 2 == 0 and c.sample_rate == 24_000 for c in chunks)
    assert b"".join(c.data for c in chunks) == data
    assert aligner.total_bytes == 20
    aligner.finish()


def test_aligner_stereo_frames() -> None:
    aligner = SampleAligner("p", 48_000, channels=2)
    assert aligner.push(b"\x00" * 6) == PcmAudio(b"\x00" * 4, 48_000, 2)
    assert aligner.push(b"\x00" * 2) == PcmAudio(b"\x00" * 4, 48_000, 2)


def test_aligner_finish_rejects_a_stray_byte_and_empty_audio() -> None:
    aligner = SampleAligner("p", 24_000)
    aligner.push(b"\x00\x01\x02")
    with pytest.raises(ProviderError) as caught:
        aligner.finish()
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    with pytest.raises(ProviderError) as empty:
        SampleAligner("p", 24_000).finish()
    assert empty.value.kind is ErrorKind.EMPTY_RESULT


def test_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after(date, now=lambda: 1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after(date, now=lambda: 1445412500.0) == 0.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ErrorKind.AUTH),
        (403, ErrorKind.AUTH),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.UNAVAILABLE),
        (503, ErrorKind.UNAVAILABLE),
        (400, ErrorKind.BAD_REQUEST),
    ],
)
def test_status_error_kinds(status: int, kind: ErrorKind) -> None:
    error = status_error("p", status, {"Retry-After": "4"}, "x" * 500)
    assert error.kind is kind
    assert error.status == status
    assert error.retry_after == 4.0
    assert len(error.detail) < 250
    assert status_error("p", status, None, "").retry_after is None


def test_transport_error_before_and_after_audio() -> None:
    assert transport_error("p", OSError("x"), received=0).kind is ErrorKind.UNAVAILABLE
    assert transport_error("p", OSError("x"), received=10).kind is ErrorKind.BAD_RESPONSE


async def test_stream_parts_in_order_and_closes_each_part() -> None:
    opened: list[str] = []
    closed: list[str] = []

    async def part(text: str) -> AsyncGenerator[PcmAudio, None]:
        opened.append(text)
        try:
            yield PcmAudio(text.encode()[:2], 8_000)
        finally:
            closed.append(text)

    stream = stream_parts("p", "One. Two. Three.", 10, part)
    chunks = [chunk async for chunk in stream]
    assert opened == closed == ["One. Two.", "Three."]
    assert [c.data for c in chunks] == [b"On", b"Th"]


async def test_stream_parts_abandoned_mid_way_closes_the_open_part() -> None:
    closed: list[str] = []

    async def part(text: str) -> AsyncGenerator[PcmAudio, None]:
        try:
            yield PcmAudio(b"\x00\x00", 8_000)
            yield PcmAudio(b"\x00\x00", 8_000)
        finally:
            closed.append(text)

    stream = stream_parts("p", "Hello.", 100, part)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == ["Hello."]


async def test_stream_parts_refuses_empty_text() -> None:
    async def part(text: str) -> AsyncGenerator[PcmAudio, None]:  # pragma: no cover
        yield PcmAudio(b"", 8_000)

    with pytest.raises(ProviderError) as caught:
        await anext(stream_parts("p", "  ", 100, part))
    assert caught.value.kind is ErrorKind.EMPTY_INPUT
