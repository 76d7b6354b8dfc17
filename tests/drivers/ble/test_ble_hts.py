"""Temperature Measurement (0x2A1C)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.datetime_char import BleDateTime, encode_date_time
from drivers.ble.hts import (
    TemperatureMeasurement,
    TemperatureSite,
    TemperatureUnit,
    decode_temperature_measurement,
    temperature_reading,
)
from drivers.ble.ieee11073 import SpecialValue, SpecialValueError, encode_float, encode_float_special
from drivers.errors import CodecError
from drivers.model import BodyTemperature, DeviceInfo, HubTime, Reading, TimeSource

# Nordic Android-BLE-Common-Library TemperatureMeasurementDataCallbackTest: 37.60 °C,
# 2012-12-05 11:50:27, type 4 (finger). The same bytes without the last one must be refused.
NORDIC_HTS = bytes([0x06, 0xB0, 0x0E, 0x00, 0xFE, 0xDC, 0x07, 0x0C, 0x05, 0x0B, 0x32, 0x1B, 0x04])


def test_nordic_example() -> None:
    assert decode_temperature_measurement(NORDIC_HTS) == TemperatureMeasurement(
        celsius=37.6,
        unit_sent=TemperatureUnit.CELSIUS,
        timestamp=BleDateTime(2012, 12, 5, 11, 50, 27),
        site=TemperatureSite.FINGER,
    )
    with pytest.raises(CodecError, match="truncated"):
        decode_temperature_measurement(NORDIC_HTS[:-1])


def _payload(flags: int) -> bytes:
    body = encode_float(986, -1) if flags & 0x01 else encode_float(3700, -2)
    if flags & 0x02:
        body += encode_date_time(datetime(2024, 5, 1, 21, 5, 0))
    if flags & 0x04:
        body += b"\x09"
    return bytes([flags]) + body


@pytest.mark.parametrize("flags", range(8))
def test_every_flag_combination(flags: int) -> None:
    payload = _payload(flags)
    assert decode_temperature_measurement(payload) == TemperatureMeasurement(
        celsius=37.0,  # 98.6 °F
        unit_sent=TemperatureUnit.FAHRENHEIT if flags & 0x01 else TemperatureUnit.CELSIUS,
        timestamp=BleDateTime(2024, 5, 1, 21, 5, 0) if flags & 0x02 else None,
        site=TemperatureSite.TYMPANUM if flags & 0x04 else None,
    )
    with pytest.raises(CodecError, match="truncated"):
        decode_temperature_measurement(payload[:-1])


@pytest.mark.parametrize(("code", "site"), list(enumerate(TemperatureSite, start=1)))
def test_every_site(code: int, site: TemperatureSite) -> None:
    assert decode_temperature_measurement(_payload(0x04)[:-1] + bytes([code])).site is site


@pytest.mark.parametrize("code", [0, 10, 255])
def test_reserved_site_is_refused(code: int) -> None:
    with pytest.raises(CodecError, match=f"temperature type {code} is reserved"):
        decode_temperature_measurement(_payload(0x04)[:-1] + bytes([code]))


@pytest.mark.parametrize("special", list(SpecialValue))
def test_special_temperature_is_refused(special: SpecialValue) -> None:
    with pytest.raises(SpecialValueError, match="temperature"):
        decode_temperature_measurement(b"\x00" + encode_float_special(special))


def test_negative_fahrenheit() -> None:
    assert decode_temperature_measurement(b"\x01" + encode_float(-40)).celsius == -40.0


def test_reading(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_temperature_measurement(_payload(0x06))
    assert temperature_reading(
        measurement, device=device, resident_id="r", received=received, clock_offset=timedelta(hours=-8)
    ) == Reading(
        device=device,
        resident_id="r",
        measurement=BodyTemperature(celsius=37.0, site="tympanum"),
        measured_at=datetime(2024, 5, 1, 13, 5, 0, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        received=received,
        device_time=datetime(2024, 5, 1, 21, 5, 0),
        source_key="hts:2024-05-01T21:05:00:37",
    )


@settings(deadline=None, max_examples=400, derandomize=True)
@given(st.binary(max_size=20))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_temperature_measurement(data)
