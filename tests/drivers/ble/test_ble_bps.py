"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.bps import (
    BloodPressureMeasurement,
    IntermediateCuffPressure,
    PressureUnit,
    blood_pressure_reading,
    decode_blood_pressure_measurement,
    decode_intermediate_cuff_pressure,
)
from drivers.ble.datetime_char import BleDateTime, encode_date_time
from drivers.ble.ieee11073 import SpecialValue, SpecialValueError, encode_sfloat, encode_sfloat_special
from drivers.errors import CodecError
from drivers.model import BloodPressure, DeviceInfo, HubTime, Reading, ReadingFlag, TimeSource

# Nordic Android-BLE-Common-Library, BloodPressureMeasurementDataCallbackTest
# (onBloodPressureMeasurementReceived_full): 138/88/120 mmHg, year unknown, 04-17 20:41:59,
# pulse 60, user 1, status 0b100111.
NORDIC_FULL = bytes.fromhex("1e8a00580078000000041114293b3c00012700")
# Same file, onBloodPressureMeasurementReceived_some: kPa 18.9/11/15.9, pulse 60, status 0b010010.
NORDIC_SOME_KPA = bytes.fromhex("15bdf00b009ff03c001200")
# Same file, onBloodPressureMeasurementReceived_minimal: flags 0, 18.9/11/15.9 (mmHg flag).
NORDIC_MINIMAL = bytes.fromhex("00bdf00b009ff0")


def test_nordic_full_example() -> None:
    assert decode_blood_pressure_measurement(NORDIC_FULL) == BloodPressureMeasurement(
        systolic_mmhg=138.0,
        diastolic_mmhg=88.0,
        mean_arterial_mmhg=120.0,
        unit_sent=PressureUnit.MMHG,
        timestamp=BleDateTime(year=None, month=4, day=17, hours=20, minutes=41, seconds=59),
        pulse_rate_bpm=60.0,
        user_id=1,
        flags=frozenset(
            {
                ReadingFlag.BODY_MOVEMENT,
                ReadingFlag.CUFF_LOOSE,
                ReadingFlag.IRREGULAR_PULSE,
                ReadingFlag.IMPROPER_POSITION,
            }
        ),
    )


def test_nordic_kpa_example_is_converted_to_mmhg() -> None:
    assert decode_blood_pressure_measurement(NORDIC_SOME_KPA) == BloodPressureMeasurement(
        systolic_mmhg=141.8,  # 18.9 kPa x 7.50062
        diastolic_mmhg=82.5,  # 11 kPa
        mean_arterial_mmhg=119.3,  # 15.9 kPa
        unit_sent=PressureUnit.KPA,
        pulse_rate_bpm=60.0,
        flags=frozenset({ReadingFlag.CUFF_LOOSE, ReadingFlag.PULSE_RATE_OUT_OF_RANGE}),
    )


def test_nordic_minimal_example() -> None:
    assert decode_blood_pressure_measurement(NORDIC_MINIMAL) == BloodPressureMeasurement(
        systolic_mmhg=18.9, diastolic_mmhg=11.0, mean_arterial_mmhg=15.9, unit_sent=PressureUnit.MMHG
    )


_STAMP = datetime(2024, 4, 30, 7, 15, 30)


def _payload(flags: int, status: int = 0x0027) -> bytes:
    """Build a 0x2A35 value for ``flags`` the way a cuff would, field by field."""
    kpa = bool(flags & 0x01)
    body = (
        encode_sfloat(*((189, -1) if kpa else (128, 0)))
        + encode_sfloat(*((11, 0) if kpa else (82, 0)))
        + encode_sfloat(*((159, -1) if kpa else (97, 0)))
    )
    if flags & 0x02:
        body += encode_date_time(_STAMP)
    if flags & 0x04:
        body += encode_sfloat(72)
    if flags & 0x08:
        body += bytes([2])
    if flags & 0x10:
        body += status.to_bytes(2, "little")
    return bytes([flags]) + body


def _expected(flags: int) -> BloodPressureMeasurement:
    kpa = bool(flags & 0x01)
    return BloodPressureMeasurement(
        systolic_mmhg=141.8 if kpa else 128.0,
        diastolic_mmhg=82.5 if kpa else 82.0,
        mean_arterial_mmhg=119.3 if kpa else 97.0,
        unit_sent=PressureUnit.KPA if kpa else PressureUnit.MMHG,
        timestamp=BleDateTime(2024, 4, 30, 7, 15, 30) if flags & 0x02 else None,
        pulse_rate_bpm=72.0 if flags & 0x04 else None,
        user_id=2 if flags & 0x08 else None,
        flags=frozenset(
            {
                ReadingFlag.BODY_MOVEMENT,
                ReadingFlag.CUFF_LOOSE,
                ReadingFlag.IRREGULAR_PULSE,
                ReadingFlag.IMPROPER_POSITION,
            }
        )
        if flags & 0x10
        else frozenset(),
    )


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    payload = _payload(flags)
    assert decode_blood_pressure_measurement(payload) == _expected(flags)
    with pytest.raises(CodecError, match="truncated"):
        decode_blood_pressure_measurement(payload[:-1])


@pytest.mark.parametrize("reserved_bits", [0x20, 0x40, 0x80, 0xE0])
def test_reserved_flag_bits_are_ignored(reserved_bits: int) -> None:
    payload = _payload(0x1F)
    assert decode_blood_pressure_measurement(bytes([payload[0] | reserved_bits]) + payload[1:]) == _expected(0x1F)


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        (0x0000, set()),
        (0x0001, {ReadingFlag.BODY_MOVEMENT}),
        (0x0002, {ReadingFlag.CUFF_LOOSE}),
        (0x0004, {ReadingFlag.IRREGULAR_PULSE}),
        (0x0008, {ReadingFlag.PULSE_RATE_OUT_OF_RANGE}),  # above upper limit
        (0x0010, {ReadingFlag.PULSE_RATE_OUT_OF_RANGE}),  # below lower limit
        (0x0020, {ReadingFlag.IMPROPER_POSITION}),  # not 0x0010, as one public parser has it
        (0xFFC0, set()),  # reserved status bits
    ],
)
def test_each_measurement_status_bit(status: int, flags: set[ReadingFlag]) -> None:
    assert decode_blood_pressure_measurement(_payload(0x10, status)).flags == frozenset(flags)


def test_reserved_pulse_rate_range_is_refused() -> None:
    with pytest.raises(CodecError, match="reserved pulse rate range value 3"):
        decode_blood_pressure_measurement(_payload(0x10, 0x0018))


def test_unknown_user_is_none() -> None:
    payload = bytearray(_payload(0x08))
    payload[-1] = 0xFF
    assert decode_blood_pressure_measurement(bytes(payload)).user_id is None


@pytest.mark.parametrize("special", list(SpecialValue))
def test_special_systolic_is_refused(special: SpecialValue) -> None:
    payload = b"\x00" + encode_sfloat_special(special) + encode_sfloat(80) + encode_sfloat(95)
    with pytest.raises(SpecialValueError, match="systolic"):
        decode_blood_pressure_measurement(payload)


def test_nan_mean_arterial_and_pulse_are_absent() -> None:
    nan = encode_sfloat_special(SpecialValue.NAN)
    payload = b"\x04" + encode_sfloat(120) + encode_sfloat(80) + nan + nan
    assert decode_blood_pressure_measurement(payload) == BloodPressureMeasurement(
        systolic_mmhg=120.0, diastolic_mmhg=80.0, mean_arterial_mmhg=None, unit_sent=PressureUnit.MMHG
    )


def test_intermediate_cuff_pressure() -> None:
    # Nordic IntermediateCuffPressureDataCallbackTest shape: cuff pressure in the systolic slot,
    # NaN in diastolic and MAP; here in kPa with a pulse rate.
    nan = encode_sfloat_special(SpecialValue.NAN)
    payload = b"\x05" + encode_sfloat(200, -1) + nan + nan + encode_sfloat(66)
    assert decode_intermediate_cuff_pressure(payload) == IntermediateCuffPressure(
        cuff_pressure_mmhg=150.0, unit_sent=PressureUnit.KPA, pulse_rate_bpm=66.0
    )


def test_intermediate_cuff_pressure_nan_is_refused() -> None:
    nan = encode_sfloat_special(SpecialValue.NAN)
    with pytest.raises(SpecialValueError, match="cuff pressure"):
        decode_intermediate_cuff_pressure(b"\x00" + nan + nan + nan)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x78\x00\x50\x00\x60"])
def test_too_short(payload: bytes) -> None:
    with pytest.raises(CodecError):
        decode_blood_pressure_measurement(payload)


def test_reading_with_device_clock_offset(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_blood_pressure_measurement(_payload(0x1E, 0))
    # The cuff runs on Beijing time and 40 s fast: hub UTC minus device clock = -8 h - 40 s.
    offset = timedelta(hours=-8, seconds=-40)
    assert blood_pressure_reading(
        measurement, device=device, resident_id="res-1", received=received, clock_offset=offset
    ) == Reading(
        device=device,
        resident_id="res-1",
        measurement=BloodPressure(systolic=128.0, diastolic=82.0, mean_arterial=97.0, pulse=72.0),
        measured_at=datetime(2024, 4, 29, 23, 14, 50, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        received=received,
        device_time=_STAMP,
        flags=frozenset(),
        source_key="bp:2024-04-30T07:15:30:u2:128/82/72.0",
    )


def test_reading_without_timestamp_uses_hub_time(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_blood_pressure_measurement(NORDIC_MINIMAL)
    unsynced = HubTime(wall=received.wall, monotonic=received.monotonic, synced=False)
    reading = blood_pressure_reading(
        measurement, device=device, resident_id="res-1", received=unsynced, clock_offset=timedelta(0)
    )
    assert reading == Reading(
        device=device,
        resident_id="res-1",
        measurement=BloodPressure(systolic=18.9, diastolic=11.0, mean_arterial=15.9, pulse=None),
        measured_at=received.wall,
        time_source=TimeSource.HUB_UNSYNCED,
        received=unsynced,
    )


def test_reading_with_unknown_year_uses_hub_time(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_blood_pressure_measurement(NORDIC_FULL)
    reading = blood_pressure_reading(
        measurement, device=device, resident_id="res-1", received=received, clock_offset=timedelta(0)
    )
    assert (reading.measured_at, reading.time_source, reading.device_time) == (
        received.wall,
        TimeSource.HUB,
        None,
    )
    assert ReadingFlag.CUFF_LOOSE in reading.flags


@settings(deadline=None, max_examples=400, derandomize=True)
@given(st.binary(max_size=24))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    for decode in (decode_blood_pressure_measurement, decode_intermediate_cuff_pressure):
        with contextlib.suppress(CodecError):
            decode(data)


def test_all_flag_payload_sizes_match_the_spec() -> None:
    # 7 bytes minimal, 19 bytes with every field: the sizes the reference sheet gives.
    sizes = {len(_payload(f)) for f in (0x00, 0x1F)}
    assert sizes == {7, 19}
    assert all(7 <= len(_payload(f)) <= 19 for f in range(32))
