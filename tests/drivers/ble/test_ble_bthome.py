"""BTHome v2 button adverts through the bthome-ble library.

Payloads are BTHome v2 service data (bthome.io format): 0x44 = v2, unencrypted, trigger-based;
object 0x00 packet id, 0x01 battery %, 0x3A button event. The first mirrors the Shelly BLU
Button1 advert asserted in the bthome-construct tests (packet id 82, battery 100 %, press).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.bthome import BTHomeAdvert, BTHomeDecoder, ButtonPress, device_events
from drivers.errors import CodecError
from drivers.model import DeviceEvent, DeviceEventKind, HubTime

ADDRESS = "3C:2E:F5:71:00:01"
SHELLY_PRESS = bytes.fromhex("44005201643a01")


def test_shelly_button_press_and_its_repeats() -> None:
    decoder = BTHomeDecoder()
    assert decoder.decode(ADDRESS, SHELLY_PRESS, 100.0) == BTHomeAdvert(
        address=ADDRESS, packet_id=82, battery_percent=100, presses=(ButtonPress(1, "single"),)
    )
    # The button sends the same advert several times: only the first counts.
    assert decoder.decode(ADDRESS, SHELLY_PRESS, 100.1) is None


@pytest.mark.parametrize(
    ("code", "press"),
    [
        (1, "single"),
        (2, "double"),
        (3, "triple"),
        (4, "long"),
        (5, "long_double"),
        (6, "long_triple"),
        (0x80, "hold"),
        (0x81, "release"),
    ],
)
def test_press_types(code: int, press: str) -> None:
    advert = BTHomeDecoder().decode(ADDRESS, bytes.fromhex("44000701643a") + bytes([code]), 1.0)
    assert advert is not None
    assert advert.presses == (ButtonPress(1, press),)


def test_multi_button_remote() -> None:
    advert = BTHomeDecoder().decode(ADDRESS, bytes.fromhex("440009015a3a003a04"), 1.0)
    assert advert == BTHomeAdvert(address=ADDRESS, packet_id=9, battery_percent=90, presses=(ButtonPress(2, "long"),))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty service data"),
        (bytes.fromhex("e102000c04"), "not a BTHome v2 advertisement"),
        (bytes.fromhex("41a47266c95f7300112233"), "does not decrypt"),
    ],
)
def test_bad_adverts(data: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        BTHomeDecoder().decode(ADDRESS, data, 1.0)


def test_encrypted_advert_with_bind_key() -> None:
    # bthome-ble tests/test_parser_v2.py test_bindkey_correct (Shelly BLU H&T): decrypts, no button.
    decoder = BTHomeDecoder(bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932"))
    advert = decoder.decode("54:48:E6:8F:80:A5", bytes.fromhex("41a47266c95f730011223378237214"), 1.0)
    assert advert == BTHomeAdvert(address="54:48:E6:8F:80:A5")


def test_bad_bind_key_length() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        BTHomeDecoder(b"\x00" * 15)


def test_device_events() -> None:
    received = HubTime(wall=datetime(2024, 5, 1, 8, 0, tzinfo=UTC), monotonic=1.0, synced=True)
    advert = BTHomeAdvert(address=ADDRESS, packet_id=1, battery_percent=87, presses=(ButtonPress(1, "long"),))
    assert device_events(advert, device_id="sos-1", resident_id="r", received=received) == [
        DeviceEvent("sos-1", "r", DeviceEventKind.BUTTON_PRESS, received, value="long", extra={"button": 1}),
        DeviceEvent("sos-1", "r", DeviceEventKind.BATTERY, received, value=87),
    ]


@settings(deadline=None, max_examples=300, derandomize=True)
@given(st.binary(max_size=30))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        BTHomeDecoder().decode(ADDRESS, data, 1.0)
