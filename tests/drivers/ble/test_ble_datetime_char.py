"""Date Time (0x2A08) and the measurement-time rule."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.datetime_char import BleDateTime, decode_date_time, encode_date_time, measurement_time
from drivers.errors import CodecError
from drivers.model import HubTime, TimeSource


def test_nordic_example_bytes() -> None:
    # Date Time part of Nordic's TemperatureMeasurementDataCallbackTest: 2012-12-05 11:50:27.
    value = decode_date_time(bytes([0xDC, 0x07, 0x0C, 0x05, 0x0B, 0x32, 0x1B]))
    assert value == BleDateTime(2012, 12, 5, 11, 50, 27)
    assert value.to_datetime() == datetime(2012, 12, 5, 11, 50, 27)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes([0, 0, 4, 17, 20, 41, 59]), BleDateTime(None, 4, 17, 20, 41, 59)),
        (bytes([0xE8, 0x07, 0, 17, 20, 41, 59]), BleDateTime(2024, None, 17, 20, 41, 59)),
        (bytes([0xE8, 0x07, 4, 0, 20, 41, 59]), BleDateTime(2024, 4, None, 20, 41, 59)),
        (bytes(7), BleDateTime(None, None, None, 0, 0, 0)),
    ],
)
def test_unknown_date_parts(data: bytes, expected: BleDateTime) -> None:
    value = decode_date_time(data)
    assert value == expected
    assert value.to_datetime() is None
    assert encode_date_time(value) == data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (bytes([0x2D, 0x06, 1, 1, 0, 0, 0]), "year 1581 is outside 1582-9999"),
        (bytes([0xE8, 0x07, 13, 1, 0, 0, 0]), "month 13"),
        (bytes([0xE8, 0x07, 1, 32, 0, 0, 0]), "day 32"),
        (bytes([0xE8, 0x07, 1, 1, 24, 0, 0]), "hours 24"),
        (bytes([0xE8, 0x07, 1, 1, 0, 60, 0]), "minutes 60"),
        (bytes([0xE8, 0x07, 1, 1, 0, 0, 60]), "seconds 60"),
        (bytes([0xE9, 0x07, 2, 29, 0, 0, 0]), "no such date 2025-2-29"),
        (bytes(6), "expected 7 bytes"),
    ],
)
def test_out_of_range(data: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode_date_time(data)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)))
def test_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert decode_date_time(encode_date_time(moment)).to_datetime() == moment


@settings(deadline=None, max_examples=300, derandomize=True)
@given(st.binary(min_size=7, max_size=7))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_date_time(data)


_HUB = HubTime(wall=datetime(2024, 5, 1, 8, 0, tzinfo=UTC), monotonic=1.0, synced=True)


def test_measurement_time_rules() -> None:
    device_time = datetime(2024, 5, 1, 15, 59, 0)
    assert measurement_time(device_time, _HUB, timedelta(hours=-8)) == (
        datetime(2024, 5, 1, 7, 59, tzinfo=UTC),
        TimeSource.DEVICE,
    )
    assert measurement_time(device_time, _HUB, None) == (_HUB.wall, TimeSource.HUB)
    assert measurement_time(None, _HUB, timedelta(0)) == (_HUB.wall, TimeSource.HUB)
    unsynced = HubTime(wall=_HUB.wall, monotonic=1.0, synced=False)
    assert measurement_time(None, unsynced, None) == (_HUB.wall, TimeSource.HUB_UNSYNCED)
