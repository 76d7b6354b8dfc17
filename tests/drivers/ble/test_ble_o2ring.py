"""O2Ring requests and answers: ecostech viatom-ble's request bytes, the o2r (MackeyStingray) examples."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.ble.framing import FrameReassembler, crc8_smbus
from drivers.ble.o2ring import (
    ANSWER_FORMAT,
    Command,
    O2RingAnswer,
    O2RingCodecError,
    O2RingInfo,
    O2RingLive,
    decode_answer,
    decode_info,
    decode_live,
    encode_request,
    encode_set_time,
    write_chunks,
)

VIATOM_BLE_READ_LIVE = bytes.fromhex("AA17E8000000001B")
"""The request ecostech viatom-ble writes for a live reading (its REQUEST_BYTES)."""
# Live payloads from the comments in o2r's o2state.py: worn, no finger, no finger while charging.
O2R_WORN = bytes.fromhex("624200000000006100920a0100")
O2R_NO_FINGER = bytes.fromhex("ffffff00000000600005000000")
O2R_CHARGING = bytes.fromhex("ffffff00000000620100000000")
# O2R_WORN as the ring sends it: 55, status 0 and its complement, block 0, length 13, CRC-8.
O2R_WORN_ANSWER = bytes.fromhex("5500ff00000d00") + O2R_WORN + bytes([0x2F])
# The o2r README prints the ring's configuration; the JSON it parsed, shortened.
O2R_README_INFO = (b'{"BootloaderVer":"1.0.0.0","CurBAT":"97%","CurMode":"0","CurTIME":"2020-08-17,23:29:30",'
                   b'"FileList":"20200817095111,20200817225251,","Model":"1652","SN":"20xxxx45xx",'
                   b'"SoftwareVer":"1.4.0"}\x00\x00')


def test_the_live_request_is_the_one_viatom_ble_sends() -> None:
    assert encode_request(Command.READ_LIVE) == VIATOM_BLE_READ_LIVE


def test_o2r_worn_example_is_98_percent_66_bpm() -> None:
    assert decode_answer(O2R_WORN_ANSWER) == O2RingAnswer(status=0, block=0, payload=O2R_WORN)
    assert decode_live(O2R_WORN) == O2RingLive(
        spo2_percent=98.0, pulse_rate_bpm=66.0, battery_percent=97, charging=0, motion=0x92, pulse_strength=10,
        finger_present=True,
    )


def test_o2r_examples_without_a_finger_have_no_values() -> None:
    assert decode_live(O2R_NO_FINGER) == O2RingLive(
        spo2_percent=None, pulse_rate_bpm=None, battery_percent=96, charging=0, motion=5, pulse_strength=0,
        finger_present=False,
    )
    assert decode_live(O2R_CHARGING) == O2RingLive(
        spo2_percent=None, pulse_rate_bpm=None, battery_percent=98, charging=1, motion=0, pulse_strength=0,
        finger_present=False,
    )


def test_a_ring_still_settling_has_no_values_yet() -> None:
    settling = bytes([0, 0]) + O2R_WORN[2:]
    assert decode_live(settling).spo2_percent is None
    assert decode_live(settling).pulse_rate_bpm is None


def test_the_clock_is_set_with_a_json_settime_in_20_byte_writes() -> None:
    request = encode_set_time(datetime(2026, 11, 30, 22, 5, 9))
    assert request == (b'\xaa\x16\xe9\x00\x00\x21\x00{"SetTIME":"2026-11-30,22:05:09"}' + bytes([0xB1]))
    assert [len(chunk) for chunk in write_chunks(request)] == [20, 20, 1]
    assert b"".join(write_chunks(request)) == request


def test_the_information_answer_gives_the_rings_clock() -> None:
    assert decode_info(O2R_README_INFO) == O2RingInfo(
        device_time=datetime(2020, 8, 17, 23, 29, 30), model="1652", serial_number="20xxxx45xx"
    )
    assert decode_info(b'{"CurTIME":"never"}') == O2RingInfo(device_time=None, model=None, serial_number=None)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"\xff\xfe", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b"[" * 3000, "not JSON"),
])
def test_information_that_is_not_a_json_object_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(O2RingCodecError, match=reason):
        decode_info(payload)


@pytest.mark.parametrize(("frame", "reason"), [
    (O2R_WORN_ANSWER[:-1] + b"\x30", "frame check failed"),
    (b"\x55\x00\xfe" + O2R_WORN_ANSWER[3:], "disagree"),
    (O2R_WORN_ANSWER + b"\x00", "does not match"),
    (b"\x55\x00\xff\x00\x00\x01\x20" + bytes(4097), "more than any answer carries"),
    (VIATOM_BLE_READ_LIVE, "not starting 55"),
])
def test_what_is_not_an_answer_is_refused_with_the_codec_error(frame: bytes, reason: str) -> None:
    with pytest.raises(O2RingCodecError, match=reason):
        decode_answer(frame)


def test_a_short_live_payload_is_refused() -> None:
    with pytest.raises(O2RingCodecError, match="11 bytes"):
        decode_live(O2R_WORN[:11])


def test_an_information_answer_in_20_byte_notifications_comes_out_whole() -> None:
    body = b"\x55\x00\xff\x00\x00" + len(O2R_README_INFO).to_bytes(2, "little") + O2R_README_INFO
    frame = body + bytes([crc8_smbus(body)])
    reassembler = FrameReassembler(ANSWER_FORMAT)
    done = [f for chunk in write_chunks(frame) for f in reassembler.feed(chunk).frames]
    assert done == [frame]
    assert decode_info(decode_answer(frame).payload).device_time == datetime(2020, 8, 17, 23, 29, 30)
