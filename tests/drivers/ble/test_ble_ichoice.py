"""iChoice frames and UUIDs: the public Android plugins' frames and service UUIDs, the ESP32 sketch's command."""

from __future__ import annotations

import pytest

from drivers.ble.framing import FrameReassembler
from drivers.ble.ichoice import (
    COMMAND,
    ENABLE,
    FRAME_FORMAT,
    NOTIFY_CHARACTERISTICS,
    IChoiceAck,
    IChoiceCodecError,
    IChoiceOther,
    IChoiceOximetry,
    decode_frame,
    service_uuid,
)

# Logged in a public Android plugin (as signed Java bytes [85,-86,3,-79,0,-76] and [85,-86,3,97,77,-79]).
PLUGIN_ENABLE_ACK = bytes.fromhex("55AA03B100B4")
PLUGIN_97_PERCENT_77_BPM = bytes.fromhex("55AA03614DB1")


@pytest.mark.parametrize(("address", "service"), [
    # The three service UUIDs public drivers print; the first address byte is not in the UUID.
    ("D8:7C:BE:2F:87:BA", "ba11f08c-5f14-0b0d-1080-007cbe2f87ba"),
    ("00:7c:be:23:88:51", "ba11f08c-5f14-0b0d-1080-007cbe238851"),
    ("FF-7C-BE-84-E4-17", "ba11f08c-5f14-0b0d-1080-007cbe84e417"),
])
def test_the_service_uuid_is_built_from_the_last_five_address_bytes(address: str, service: str) -> None:
    assert service_uuid(address) == service


def test_the_blood_pressure_monitor_has_10a0_in_place_of_1080() -> None:
    assert service_uuid("D8:7C:BE:2F:87:BA", blood_pressure=True) == "ba11f08c-5f14-0b0d-10a0-007cbe2f87ba"


def test_an_address_that_is_not_one_is_refused() -> None:
    with pytest.raises(IChoiceCodecError, match="not a Bluetooth address"):
        service_uuid("D8:7C:BE:2F:87")


def test_the_characteristics_are_16_bit_uuids_in_the_bluetooth_base() -> None:
    assert [c.uuid for c in NOTIFY_CHARACTERISTICS] == [
        f"0000cd0{n}-0000-1000-8000-00805f9b34fb" for n in range(1, 5)
    ]
    assert COMMAND.uuid == "0000cd20-0000-1000-8000-00805f9b34fb"


def test_the_enable_command_is_the_one_both_public_drivers_write() -> None:
    assert bytes.fromhex("AA5504B10000B5") == ENABLE


def test_the_plugins_frames() -> None:
    assert decode_frame(PLUGIN_ENABLE_ACK) == IChoiceAck(0xB1)
    assert decode_frame(PLUGIN_97_PERCENT_77_BPM) == IChoiceOximetry(spo2_percent=97.0, pulse_rate_bpm=77.0)


def test_a_clip_without_a_finger_sends_zeros() -> None:
    assert decode_frame(bytes.fromhex("55AA03000003")) == IChoiceOximetry(spo2_percent=None, pulse_rate_bpm=None)


def test_a_frame_of_another_length_is_kept_as_unknown() -> None:
    assert decode_frame(bytes.fromhex("55AA04615001B6")) == IChoiceOther(b"\x61\x50\x01")


@pytest.mark.parametrize(("frame", "reason"), [
    (PLUGIN_97_PERCENT_77_BPM[:-1] + b"\xb2", "does not add up"),
    (PLUGIN_97_PERCENT_77_BPM + b"\x00", "does not match"),
    (bytes.fromhex("55AA0100"), "not starting 55 AA"),
    (bytes.fromhex("AA5503614DB1"), "not starting 55 AA"),
])
def test_what_is_not_a_frame_is_refused_with_the_codec_error(frame: bytes, reason: str) -> None:
    with pytest.raises(IChoiceCodecError, match=reason):
        decode_frame(frame)


def test_back_to_back_frames_in_one_notification_come_out_whole() -> None:
    result = FrameReassembler(FRAME_FORMAT).feed(PLUGIN_ENABLE_ACK + PLUGIN_97_PERCENT_77_BPM)
    assert result.frames == (PLUGIN_ENABLE_ACK, PLUGIN_97_PERCENT_77_BPM)
