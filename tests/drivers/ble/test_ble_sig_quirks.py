"""SIG-profile values as real devices send them, quirks included: NaN in every field, plain integers in
place of SFLOAT, and the byte examples of A&D's UA-651BLE (obniz ``parts/Ble/UA651BLE``)."""

from __future__ import annotations

import struct

import pytest

from drivers.ble.bps import BloodPressureMeasurement, PressureUnit, decode_blood_pressure_measurement
from drivers.ble.datetime_char import BleDateTime
from drivers.ble.hts import decode_temperature_measurement
from drivers.ble.ieee11073 import (
    NoMeasurementError,
    SpecialValue,
    SpecialValueError,
    encode_float_special,
    encode_sfloat,
    encode_sfloat_special,
)
from drivers.ble.plx import decode_spot_check

NAN = encode_sfloat_special(SpecialValue.NAN)

# --- NaN in every field, no status bit ------------------------------------------------------------


def test_a_cuff_with_nan_in_every_field_and_no_status_bit_measured_nothing() -> None:
    # flags: timestamp + pulse rate; systolic, diastolic, MAP and pulse all 0x07FF.
    payload = b"\x06" + NAN + NAN + NAN + bytes.fromhex("e8070502080a14") + NAN
    with pytest.raises(NoMeasurementError) as caught:
        decode_blood_pressure_measurement(payload)
    assert str(caught.value).startswith(
        "Blood Pressure Measurement: NaN in every value (systolic, diastolic, mean_arterial, pulse_rate)")
    assert isinstance(caught.value, SpecialValueError)  # callers that caught NaN before still do


@pytest.mark.parametrize("values", [encode_sfloat(120) + NAN + NAN, NAN + encode_sfloat(80) + NAN])
def test_a_cuff_with_some_numbers_and_a_nan_pressure_is_refused_not_a_failed_measurement(values: bytes) -> None:
    with pytest.raises(SpecialValueError) as caught:
        decode_blood_pressure_measurement(b"\x00" + values)
    assert not isinstance(caught.value, NoMeasurementError)


def test_a_thermometer_with_a_nan_temperature_measured_nothing() -> None:
    with pytest.raises(NoMeasurementError, match="Temperature Measurement: NaN in every value"):
        decode_temperature_measurement(b"\x00" + encode_float_special(SpecialValue.NAN))


def test_a_spot_check_with_nan_spo2_and_pulse_measured_nothing() -> None:
    with pytest.raises(NoMeasurementError, match="PLX Spot-check Measurement: NaN in every value"):
        decode_spot_check(b"\x00" + NAN + NAN)


# --- plain integers instead of SFLOAT (Silvercrest SBM67/69) --------------------------------------


def _plain_integers(systolic: int, diastolic: int, mean_arterial: int, pulse: int) -> bytes:
    """0x2A35 as a cuff writes it with u16 integers where SFLOATs belong (timestamp, pulse, user 0)."""
    return (b"\x0e" + struct.pack("<HHH", systolic, diastolic, mean_arterial)
            + bytes.fromhex("e8070502080a14") + struct.pack("<HB", pulse, 0))


@pytest.mark.parametrize(("systolic", "diastolic", "mean_arterial", "pulse"),
                         [(120, 80, 93, 72), (0, 0, 0, 0), (299, 199, 232, 250), (2045, 2045, 2045, 2045)])
def test_plain_integers_are_the_sfloats_of_exponent_zero(systolic: int, diastolic: int, mean_arterial: int,
                                                         pulse: int) -> None:
    # Below 2046 a little-endian u16 has a zero top nibble: it is the SFLOAT mantissa x 10^0, the same
    # number. Nothing to detect and nothing to configure: every pressure and pulse a cuff can measure.
    assert decode_blood_pressure_measurement(_plain_integers(systolic, diastolic, mean_arterial, pulse)) == (
        BloodPressureMeasurement(
            systolic_mmhg=systolic, diastolic_mmhg=diastolic, mean_arterial_mmhg=mean_arterial,
            unit_sent=PressureUnit.MMHG, timestamp=BleDateTime(2024, 5, 2, 8, 10, 20),
            pulse_rate_bpm=pulse, user_id=0))


def test_sfloats_with_an_exponent_are_not_taken_for_integers() -> None:
    # The Yuwell habit the other way round: 1200 x 10^-1 mmHg is 120.0, where a u16 reader sees 62640.
    payload = b"\x00" + encode_sfloat(1200, -1) + encode_sfloat(800, -1) + encode_sfloat(933, -1)
    measurement = decode_blood_pressure_measurement(payload)
    assert (measurement.systolic_mmhg, measurement.diastolic_mmhg, measurement.mean_arterial_mmhg) == (
        120.0, 80.0, 93.3)


# --- A&D UA-651BLE, obniz's byte examples ------------------------------------------------------------


def test_a_and_d_examples_128_mmhg_and_17_6_kpa() -> None:
    # "128mmHg -> 0x80 0x00", "17.6kPa -> 0xB0 0xF0", "2013/8/26 9:10:20 -> DD 07 08 1A 09 0A 14".
    in_mmhg = decode_blood_pressure_measurement(b"\x02" + b"\x80\x00" * 3 + bytes.fromhex("dd07081a090a14"))
    assert in_mmhg == BloodPressureMeasurement(systolic_mmhg=128, diastolic_mmhg=128, mean_arterial_mmhg=128,
                                               unit_sent=PressureUnit.MMHG,
                                               timestamp=BleDateTime(2013, 8, 26, 9, 10, 20))
    in_kpa = decode_blood_pressure_measurement(b"\x01" + b"\xb0\xf0" * 3)
    assert in_kpa.systolic_mmhg == 132.0 and in_kpa.unit_sent is PressureUnit.KPA  # 17.6 x 7.50062
