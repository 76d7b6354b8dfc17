"""PC-60F family frames: the sza2 viatom_pc60fw README's examples, and the SDK's status bits."""

from __future__ import annotations

import pytest

from drivers.ble.framing import FrameReassembler
from drivers.ble.viatom import (
    FRAME_FORMAT,
    ViatomBattery,
    ViatomCodecError,
    ViatomOther,
    ViatomPleth,
    ViatomSpO2,
    decode_frame,
    encode_frame,
)
from drivers.model import ReadingFlag

# The README's frames with the CRC-8/MAXIM byte it says each ends in (its tables leave it out).
README_SPO2 = bytes.fromhex("AA550F0801603E005000C008")
README_PLETH = bytes.fromhex("AA550F07023B3835322FBD")
README_WORKING_STATUS = bytes.fromhex("AA550F06210200000045")
README_BATTERY = bytes.fromhex("AA55F0030303F6")


def test_readme_spo2_example_is_96_percent_62_bpm_pi_8() -> None:
    assert decode_frame(README_SPO2) == ViatomSpO2(
        spo2_percent=96.0, pulse_rate_bpm=62.0, perfusion_index_percent=8.0, probe_off=False,
        pulse_searching=False, battery_level=3,
    )


def test_readme_examples_of_the_other_functions() -> None:
    assert decode_frame(README_PLETH) == ViatomPleth((0x3B, 0x38, 0x35, 0x32, 0x2F))
    assert decode_frame(README_WORKING_STATUS) == ViatomOther(0x0F, 0x21, b"\x02\x00\x00\x00")
    assert decode_frame(README_BATTERY) == ViatomBattery(3)


def test_the_hub_encoder_writes_the_readme_bytes() -> None:
    assert encode_frame(0x0F, 0x01, bytes.fromhex("603E005000C0")) == README_SPO2
    assert encode_frame(0xF0, 0x03, b"\x03") == README_BATTERY


def test_a_finger_out_of_the_probe_has_no_values() -> None:
    probe_off = encode_frame(0x0F, 0x01, bytes.fromhex("000000000280"))
    assert decode_frame(probe_off) == ViatomSpO2(
        spo2_percent=None, pulse_rate_bpm=None, perfusion_index_percent=None, probe_off=True,
        pulse_searching=False, battery_level=2,
    )


def test_a_unit_still_searching_for_the_pulse_marks_its_values_unreliable() -> None:
    searching = encode_frame(0x0F, 0x01, bytes.fromhex("5D48001404C0"))
    assert decode_frame(searching) == ViatomSpO2(
        spo2_percent=93.0, pulse_rate_bpm=72.0, perfusion_index_percent=2.0, probe_off=False,
        pulse_searching=True, battery_level=3, flags=frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE}),
    )


def test_the_pleth_beat_marker_is_cleared() -> None:
    # The README: one sample per beat arrives with 0x80 added.
    assert decode_frame(encode_frame(0x0F, 0x02, bytes([0x3B, 0xB8, 0x35]))) == ViatomPleth((0x3B, 0x38, 0x35))


@pytest.mark.parametrize(("frame", "reason"), [
    (README_SPO2[:-1] + b"\x09", "frame check failed"),
    (README_SPO2 + b"\x00", "does not match"),
    (b"\xaa\x55\x1f" + README_SPO2[3:], "neither 0x0f nor 0xf0"),
    (bytes.fromhex("AA550F01") + b"\x00", "not starting AA 55"),
    (encode_frame(0x0F, 0x01, b"\x60\x3e"), "SpO2 parameters: 2 payload bytes"),
    (encode_frame(0xF0, 0x03, b"\x07"), "battery level 7 is outside 0-3"),
])
def test_what_is_not_a_frame_is_refused_with_the_codec_error(frame: bytes, reason: str) -> None:
    with pytest.raises(ViatomCodecError, match=reason):
        decode_frame(frame)


def test_frames_split_across_notifications_or_sharing_one_come_out_whole() -> None:
    stream = README_SPO2 + README_PLETH + README_BATTERY
    for cut in range(1, len(stream)):
        reassembler = FrameReassembler(FRAME_FORMAT)
        first, second = reassembler.feed(stream[:cut]), reassembler.feed(stream[cut:])
        assert first.frames + second.frames == (README_SPO2, README_PLETH, README_BATTERY), cut
        assert reassembler.pending == 0


def test_a_corrupt_frame_is_reported_and_the_next_one_still_found() -> None:
    corrupt = README_SPO2[:6] + b"\x61" + README_SPO2[7:]
    result = FrameReassembler(FRAME_FORMAT).feed(b"\x00\x13" + corrupt + README_BATTERY)
    assert result.frames == (README_BATTERY,)
    assert [type(e) for e in result.rejected] == [ViatomCodecError]
