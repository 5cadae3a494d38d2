"""Opus decoding per user: FEC for one lost packet, PLC for more, time kept, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from openclaw_voice.audio.decode import FloatArray, OpusStreamDecoder
from tests.unit.audio.signals import dominant_frequency, opus_frames, speech, to_int16, tone

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
FRAME = 320  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def speech_packets() -> list[bytes]:
    return opus_frames(speech(SENTENCE))


def _decode(packets: list[bytes], lost: set[int]) -> tuple[FloatArray, OpusStreamDecoder]:
    decoder = OpusStreamDecoder()
    out = []
    for i, payload in enumerate(packets):
        if i in lost:
            following = packets[i + 1] if i + 1 < len(packets) and i + 1 not in lost else None
            out.append(decoder.conceal(following))
        else:
            out.append(decoder.decode(payload))
    return np.concatenate(out), decoder


def _snr_db(reference: FloatArray, test: FloatArray) -> float:
    error = float(np.sum((test - reference) ** 2))
    return 10 * float(np.log10(float(np.sum(reference**2)) / max(error, 1e-12)))


def test_fec_recovers_a_single_lost_packet(speech_packets: list[bytes]) -> None:
    reference, _ = _decode(speech_packets, set())
    fec_snr, plc_snr = [], []
    for k in range(20, len(speech_packets) - 5, 7):
        segment = slice(k * FRAME, (k + 1) * FRAME)
        if float(np.sum(reference[segment] ** 2)) < 1e-3:
            continue  # a pause: nothing to compare
        recovered, decoder = _decode(speech_packets[: k + 8], {k})
        assert decoder.recovered == 1
        assert decoder.concealed == 0
        fec_snr.append(_snr_db(reference[segment], recovered[segment]))
        # the same loss concealed without the next packet (PLC only) for comparison
        decoder = OpusStreamDecoder()
        out = [decoder.decode(p) for p in speech_packets[:k]] + [decoder.conceal(None)]
        out += [decoder.decode(p) for p in speech_packets[k + 1 : k + 8]]
        concealed = np.concatenate(out)
        plc_snr.append(_snr_db(reference[segment], concealed[segment]))
    assert len(fec_snr) >= 10
    assert float(np.median(fec_snr)) > 10.0
    assert float(np.median(fec_snr)) > float(np.median(plc_snr)) + 6.0


def test_two_lost_packets_are_concealed_and_keep_time(speech_packets: list[bytes]) -> None:
    reference, _ = _decode(speech_packets, set())
    lossy, decoder = _decode(speech_packets, {30, 31})
    assert decoder.concealed == 1  # packet 30: PLC (31 is lost too)
    assert decoder.recovered == 1  # packet 31: FEC from 32
    assert len(lossy) == len(reference)
    segment = slice(30 * FRAME, 32 * FRAME)
    assert float(np.sum(lossy[segment] ** 2)) > 0.05 * float(np.sum(reference[segment] ** 2))
    after = slice(40 * FRAME, 60 * FRAME)  # the stream re-converges after the loss
    assert _snr_db(reference[after], lossy[after]) > 20


def test_silence_frames_keep_time() -> None:
    decoder = OpusStreamDecoder()
    packets = opus_frames(tone(440, 0.2))
    out = [decoder.decode(p) for p in packets[:5]]
    out += [decoder.silence() for _ in range(50)]
    out += [decoder.decode(p) for p in packets[5:]]
    total = sum(len(block) for block in out)
    expected = (len(packets) + 50) * FRAME
    assert expected - 600 <= total <= expected  # soxr's fixed startup delay only
    tail = np.concatenate(out[30:50])
    assert float(np.max(np.abs(tail))) == 0.0


def test_resampling_preserves_frequency() -> None:
    decoder = OpusStreamDecoder()
    for freq in (300.0, 1000.0, 3000.0):
        out = np.concatenate([decoder.decode(p) for p in opus_frames(tone(freq, 0.5))])
        measured = dominant_frequency(out[1600:], 16_000)
        assert abs(measured - freq) < 20, (freq, measured)
        decoder = OpusStreamDecoder()


def test_stereo_is_downmixed_to_mono() -> None:
    from discord import opus

    encoder = opus.Encoder()
    left, right = to_int16(tone(440, 0.4)), to_int16(tone(2000, 0.4))
    stereo = np.stack([left, right], axis=1)
    packets = [encoder.encode(stereo[i : i + 960].tobytes(), 960) for i in range(0, 19200, 960)]
    decoder = OpusStreamDecoder()
    out = np.concatenate([decoder.decode(p) for p in packets])[1600:]
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    bin_hz = 16_000 / len(out)
    peaks = {440: spectrum[round(440 / bin_hz)], 2000: spectrum[round(2000 / bin_hz)]}
    assert min(peaks.values()) > 0.3 * max(peaks.values())
    assert min(peaks.values()) > 20 * float(np.median(spectrum))


def test_corrupt_payload_is_counted_and_concealed() -> None:
    decoder = OpusStreamDecoder()
    good = opus_frames(tone(440, 0.2))
    for payload in good[:5]:
        decoder.decode(payload)
    out = decoder.decode(b"\xff\xff\xff\xff")  # an invalid code-3 packet
    assert decoder.errors == 1
    assert decoder.concealed == 1
    assert 300 <= len(out) + len(decoder.silence()) <= 3 * FRAME  # soxr emits in blocks
    decoder.close()
    decoder.close()
    with pytest.raises(RuntimeError):
        decoder.decode(good[1])


def test_packet_slots() -> None:
    from openclaw_voice.audio.decode import packet_slots

    OpusStreamDecoder()  # loads libopus
    assert packet_slots(opus_frames(tone(440, 0.02))[0]) == 1
    assert packet_slots(b"") == 1
    assert packet_slots(b"\xff\xff\xff") == 1  # claims 63 frames: nonsense
