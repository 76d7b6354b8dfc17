"""PLX Spot-check (0x2A5E) and PLX Continuous (0x2A5F) measurements.

No public capture of a real oximeter was found; payloads follow the PLX Service layout
(Bluetooth SIG PLXS v1.0.1, GATT Specification Supplement) field by field.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.datetime_char import BleDateTime, encode_date_time
from drivers.ble.ieee11073 import SpecialValue, SpecialValueError, encode_sfloat, encode_sfloat_special
from drivers.ble.plx import (
    ContinuousMeasurement,
    DeviceSensorStatus,
    MeasurementStatus,
    SpotCheckMeasurement,
    decode_continuous,
    decode_spot_check,
    spot_check_reading,
)
from drivers.errors import CodecError
from drivers.model import DeviceInfo, HubTime, Reading, ReadingFlag, SpO2, TimeSource

_NAN = encode_sfloat_special(SpecialValue.NAN)


def _spot(flags: int, measurement_status: int = 0x0080, device_status: int = 0x000020) -> bytes:
    body = encode_sfloat(97) + encode_sfloat(68)
    if flags & 0x01:
        body += encode_date_time(datetime(2024, 5, 1, 9, 0, 0))
    if flags & 0x02:
        body += measurement_status.to_bytes(2, "little")
    if flags & 0x04:
        body += device_status.to_bytes(3, "little")
    if flags & 0x08:
        body += encode_sfloat(52, -1)
    return bytes([flags]) + body


@pytest.mark.parametrize("flags", range(32))
def test_spot_check_every_flag_combination(flags: int) -> None:
    payload = _spot(flags)
    assert decode_spot_check(payload) == SpotCheckMeasurement(
        spo2_percent=97.0,
        pulse_rate_bpm=68.0,
        timestamp=BleDateTime(2024, 5, 1, 9, 0, 0) if flags & 0x01 else None,
        device_clock_set=not flags & 0x10,
        measurement_status=frozenset({MeasurementStatus.VALIDATED_DATA}) if flags & 0x02 else frozenset(),
        device_sensor_status=frozenset({DeviceSensorStatus.LOW_PERFUSION}) if flags & 0x04 else frozenset(),
        pulse_amplitude_index=5.2 if flags & 0x08 else None,
        flags=frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE}) if flags & 0x04 else frozenset(),
    )
    with pytest.raises(CodecError, match="truncated"):
        decode_spot_check(payload[:-1])


def _continuous(flags: int) -> bytes:
    body = encode_sfloat(96) + encode_sfloat(70)
    if flags & 0x01:
        body += encode_sfloat(95) + encode_sfloat(72)
    if flags & 0x02:
        body += encode_sfloat(97) + encode_sfloat(69)
    if flags & 0x04:
        body += (0x0020).to_bytes(2, "little")  # measurement ongoing
    if flags & 0x08:
        body += (0x004000).to_bytes(3, "little")  # sensor malfunctioning
    if flags & 0x10:
        body += encode_sfloat(30, -1)
    return bytes([flags]) + body


@pytest.mark.parametrize("flags", range(32))
def test_continuous_every_flag_combination(flags: int) -> None:
    payload = _continuous(flags)
    assert decode_continuous(payload) == ContinuousMeasurement(
        spo2_percent=96.0,
        pulse_rate_bpm=70.0,
        spo2_fast_percent=95.0 if flags & 0x01 else None,
        pulse_rate_fast_bpm=72.0 if flags & 0x01 else None,
        spo2_slow_percent=97.0 if flags & 0x02 else None,
        pulse_rate_slow_bpm=69.0 if flags & 0x02 else None,
        measurement_status=frozenset({MeasurementStatus.MEASUREMENT_ONGOING}) if flags & 0x04 else frozenset(),
        device_sensor_status=frozenset({DeviceSensorStatus.SENSOR_MALFUNCTIONING}) if flags & 0x08 else frozenset(),
        pulse_amplitude_index=3.0 if flags & 0x10 else None,
        flags=frozenset({ReadingFlag.SENSOR_FAULT}) if flags & 0x08 else frozenset(),
    )
    with pytest.raises(CodecError, match="truncated"):
        decode_continuous(payload[:-1])


def test_every_measurement_status_bit() -> None:
    measurement = decode_spot_check(_spot(0x02, measurement_status=0xFFFF))
    assert measurement.measurement_status == frozenset(MeasurementStatus)
    assert measurement.flags == frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE})


def test_every_device_sensor_status_bit() -> None:
    measurement = decode_spot_check(_spot(0x04, device_status=0xFFFFFF))
    assert measurement.device_sensor_status == frozenset(DeviceSensorStatus)
    assert measurement.flags == frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE, ReadingFlag.SENSOR_FAULT})


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (0x0001, frozenset()),  # extended display update: nothing about the value
        (0x0200, frozenset()),  # signal analysis ongoing
        (0x0002, frozenset({ReadingFlag.SENSOR_FAULT})),
        (0x0800, frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE})),  # sensor not on the finger
    ],
)
def test_device_status_mapping(status: int, flags: frozenset[ReadingFlag]) -> None:
    assert decode_spot_check(_spot(0x04, device_status=status)).flags == flags


def test_continuous_finger_out_is_none() -> None:
    assert decode_continuous(b"\x00" + _NAN + _NAN) == ContinuousMeasurement(spo2_percent=None, pulse_rate_bpm=None)


@pytest.mark.parametrize("special", list(SpecialValue))
def test_spot_check_special_spo2_is_refused(special: SpecialValue) -> None:
    with pytest.raises(SpecialValueError, match="SpO2"):
        decode_spot_check(b"\x00" + encode_sfloat_special(special) + encode_sfloat(70))


def test_spot_check_reading(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_spot_check(_spot(0x01))
    assert spot_check_reading(
        measurement, device=device, resident_id="r", received=received, clock_offset=timedelta(hours=-8)
    ) == Reading(
        device=device,
        resident_id="r",
        measurement=SpO2(spo2=97.0, pulse=68.0),
        measured_at=datetime(2024, 5, 1, 1, 0, 0, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        received=received,
        device_time=datetime(2024, 5, 1, 9, 0, 0),
        source_key="plx:2024-05-01T09:00:00:97/68",
    )


def test_clock_not_set_uses_hub_time(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_spot_check(_spot(0x11))
    reading = spot_check_reading(
        measurement, device=device, resident_id="r", received=received, clock_offset=timedelta(0)
    )
    assert (reading.measured_at, reading.time_source, reading.source_key) == (received.wall, TimeSource.HUB, None)


@settings(deadline=None, max_examples=400, derandomize=True)
@given(st.binary(max_size=24))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    for decode in (decode_spot_check, decode_continuous):
        with contextlib.suppress(CodecError):
            decode(data)
