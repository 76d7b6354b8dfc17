"""Unit conversions into the hub's canonical units, at points a clinician would check by heart.

The thresholds are in mmol/L, mmHg and °C; a conversion that is off by a factor or a rounding
step moves every alarm. Each point is a clinical boundary where the answer is known.
"""

from __future__ import annotations

import pytest

from drivers.ble.bps import BloodPressureMeasurement, PressureUnit, decode_blood_pressure_measurement
from drivers.ble.hts import TemperatureMeasurement, TemperatureUnit, decode_temperature_measurement
from drivers.ble.ieee11073 import encode_float, encode_sfloat
from drivers.model import MG_DL_PER_MMOL_L, mg_dl_to_mmol_l


@pytest.mark.parametrize(("mg_dl", "mmol_l"), [
    (18.016, 1.0),      # the factor itself
    (54, 3.0),          # ADA level 2 hypoglycaemia boundary (< 54 mg/dL)
    (70, 3.89),         # ADA level 1 hypoglycaemia boundary (< 70 mg/dL), 3.9 in Chinese guidelines
    (126, 6.99),        # ADA fasting diagnostic level (>= 126 mg/dL), 7.0 mmol/L
    (250, 13.88),       # time-above-range level 2 (> 250 mg/dL), 13.9 mmol/L
    (300, 16.65),       # about the 16.7 mmol/L severe hyperglycaemia level
    (600, 33.3),        # HHS threshold (>= 600 mg/dL), 33.3 mmol/L
    (20, 1.11),         # OneTouch Ultra 2 "LO" bound
    (0, 0.0),
])
def test_mg_dl_to_mmol_l_at_clinical_boundaries(mg_dl: float, mmol_l: float) -> None:
    assert mg_dl_to_mmol_l(mg_dl) == mmol_l


def test_mg_dl_to_mmol_l_uses_the_chinese_factor_and_rounds_to_hundredths() -> None:
    assert MG_DL_PER_MMOL_L == 18.016
    assert mg_dl_to_mmol_l(100) == 5.55    # 5.5506...
    assert mg_dl_to_mmol_l(180) == 9.99    # 9.9911...: the ADA post-meal target of 10.0 lands just under


# Blood Pressure Measurement, flags 0x01 (kPa), SFLOATs with exponent -1 (0xF...).
BPS_16_0_OVER_10_7_KPA = bytes.fromhex("01a0f06bf07df0")   # 16.0 / 10.7 kPa, MAP 12.5 kPa
BPS_24_0_OVER_16_0_KPA = bytes.fromhex("01f0f0a0f0c8f0")   # 24.0 / 16.0 kPa, MAP 20.0 kPa
BPS_120_OVER_80_MMHG = bytes.fromhex("0078005000ff07")     # 120 / 80 mmHg, MAP NaN


def kpa_payload(*tenths_kpa: int) -> bytes:
    return b"\x01" + b"".join(encode_sfloat(tenths, -1) for tenths in tenths_kpa)


def test_the_byte_strings_say_what_their_names_say() -> None:
    assert kpa_payload(160, 107, 125) == BPS_16_0_OVER_10_7_KPA
    assert kpa_payload(240, 160, 200) == BPS_24_0_OVER_16_0_KPA


def test_kpa_cuff_reading_of_120_over_80_mmhg() -> None:
    assert decode_blood_pressure_measurement(BPS_16_0_OVER_10_7_KPA) == BloodPressureMeasurement(
        systolic_mmhg=120.0,        # 16.0 x 7.50062 = 120.01
        diastolic_mmhg=80.3,        # 10.7 x 7.50062 = 80.26
        mean_arterial_mmhg=93.8,    # 12.5 x 7.50062 = 93.76
        unit_sent=PressureUnit.KPA,
    )


def test_kpa_cuff_reading_at_the_hypertensive_crisis_boundary() -> None:
    assert decode_blood_pressure_measurement(BPS_24_0_OVER_16_0_KPA) == BloodPressureMeasurement(
        systolic_mmhg=180.0,        # 24.0 kPa: the 180 mmHg crisis level
        diastolic_mmhg=120.0,       # 16.0 kPa: the 120 mmHg crisis level
        mean_arterial_mmhg=150.0,
        unit_sent=PressureUnit.KPA,
    )


def test_mmhg_cuff_reading_is_not_converted() -> None:
    assert decode_blood_pressure_measurement(BPS_120_OVER_80_MMHG) == BloodPressureMeasurement(
        systolic_mmhg=120, diastolic_mmhg=80, mean_arterial_mmhg=None, unit_sent=PressureUnit.MMHG
    )


@pytest.mark.parametrize(("payload", "celsius"), [
    ("01400100ff", 0.0),     # 32.0 °F: water freezes
    ("01da0300ff", 37.0),    # 98.6 °F: the textbook normal
    ("01f50300ff", 38.5),    # 101.3 °F: the fever warning level
    ("01b60300ff", 35.0),    # 95.0 °F: the hypothermia level
    ("01d4000000", 100.0),   # 212 °F: water boils
])
def test_fahrenheit_thermometer_readings_in_celsius(payload: str, celsius: float) -> None:
    assert decode_temperature_measurement(bytes.fromhex(payload)) == TemperatureMeasurement(
        celsius=celsius, unit_sent=TemperatureUnit.FAHRENHEIT
    )


@pytest.mark.parametrize(("payload", "mantissa", "exponent"), [
    ("01400100ff", 320, -1), ("01da0300ff", 986, -1), ("01f50300ff", 1013, -1), ("01b60300ff", 950, -1),
    ("01d4000000", 212, 0),
])
def test_fahrenheit_payloads_are_the_floats_their_comments_say(payload: str, mantissa: int, exponent: int) -> None:
    assert bytes.fromhex(payload) == b"\x01" + encode_float(mantissa, exponent)


def test_celsius_thermometer_reading_is_not_converted() -> None:
    assert decode_temperature_measurement(b"\x00" + encode_float(366, -1)) == TemperatureMeasurement(
        celsius=36.6, unit_sent=TemperatureUnit.CELSIUS
    )
