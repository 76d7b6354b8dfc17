"""Every single-reading rule at and around its threshold (clinical-thresholds.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.model import (
    BloodPressure,
    BodyTemperature,
    DeviceInfo,
    Glucose,
    GlucoseSample,
    HubTime,
    Measurement,
    Reading,
    ReadingFlag,
    SpO2,
    TimeSource,
)
from gateway.config import Thresholds
from gateway.detect.vitals import evaluate_reading
from gateway.vocabulary import AlertKind, Severity

T = Thresholds()
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def reading(m: Measurement, *flags: ReadingFlag) -> Reading:
    return Reading(device=DeviceInfo("dev-1", "serial"), resident_id="r-1", measurement=m, measured_at=NOW,
                   time_source=TimeSource.DEVICE, received=HubTime(NOW, 1.0, True), flags=frozenset(flags))


def outcome(m: Measurement, *flags: ReadingFlag) -> list[tuple[AlertKind, Severity]]:
    return [(f.kind, f.severity) for f in evaluate_reading(reading(m, *flags), T)]


HYPO, HYPER = AlertKind.HYPOGLYCAEMIA, AlertKind.HYPERGLYCAEMIA
E, U, W = Severity.EMERGENCY, Severity.URGENT, Severity.WARNING


@pytest.mark.parametrize(("mmol_l", "expected"), [
    (2.99, [(HYPO, E)]), (3.0, [(HYPO, U)]), (3.89, [(HYPO, U)]), (3.9, []), (5.5, []),
    (13.9, []), (13.91, [(HYPER, W)]), (16.69, [(HYPER, W)]), (16.7, [(HYPER, U)]),
    (33.29, [(HYPER, U)]), (33.3, [(HYPER, E)]),
])
def test_glucose_thresholds(mmol_l: float, expected: list[tuple[AlertKind, Severity]]) -> None:
    assert outcome(Glucose(mmol_l)) == expected


def test_meter_lo_and_hi_count_as_beyond_the_emergency_bounds() -> None:
    assert outcome(Glucose(1.1), ReadingFlag.BELOW_RANGE) == [(HYPO, E)]
    assert outcome(Glucose(33.3), ReadingFlag.ABOVE_RANGE) == [(HYPER, E)]


def test_control_solution_is_never_evaluated() -> None:
    assert outcome(Glucose(1.5, sample=GlucoseSample.CONTROL_SOLUTION), ReadingFlag.CONTROL_SOLUTION) == []


def test_device_flagged_reading_only_asks_for_a_remeasure() -> None:
    assert outcome(Glucose(2.0), ReadingFlag.PARITY_ERROR) == [(AlertKind.REMEASURE, W)]
    assert outcome(BloodPressure(200, 130), ReadingFlag.CUFF_LOOSE) == [(AlertKind.REMEASURE, W)]


CRISIS, GRADE3, LOW, PULSE = (AlertKind.HYPERTENSIVE_CRISIS, AlertKind.HYPERTENSION_GRADE3,
                              AlertKind.HYPOTENSION, AlertKind.PULSE_OUT_OF_RANGE)


@pytest.mark.parametrize(("systolic", "diastolic", "pulse", "expected"), [
    (179, 109, 70, []), (180, 80, 70, [(CRISIS, U)]), (150, 120, 70, [(CRISIS, U)]),
    (150, 119, 70, [(GRADE3, W)]), (150, 110, 70, [(GRADE3, W)]), (90, 60, 70, []),
    (89, 50, 70, [(LOW, U)]), (120, 80, 40, []), (120, 80, 39, [(PULSE, U)]), (120, 80, 130, []),
    (120, 80, 131, [(PULSE, U)]), (185, 125, 135, [(CRISIS, U), (PULSE, U)]),
])
def test_blood_pressure_thresholds(systolic: float, diastolic: float, pulse: float,
                                   expected: list[tuple[AlertKind, Severity]]) -> None:
    assert outcome(BloodPressure(systolic, diastolic, None, pulse)) == expected


@pytest.mark.parametrize(("spo2", "pulse", "expected"), [
    (85, 70, []), (84.9, 70, [(AlertKind.SPO2_LOW, E)]), (97, 131, [(PULSE, U)]), (97, None, []),
])
def test_spo2_spot_check(spo2: float, pulse: float | None, expected: list[tuple[AlertKind, Severity]]) -> None:
    assert outcome(SpO2(spo2, pulse)) == expected


@pytest.mark.parametrize(("celsius", "expected"), [
    (34.9, [(AlertKind.HYPOTHERMIA, U)]), (35.0, []), (38.4, []), (38.5, [(AlertKind.FEVER, W)]),
    (39.4, [(AlertKind.FEVER, W)]), (39.5, [(AlertKind.FEVER, U)]),
])
def test_temperature(celsius: float, expected: list[tuple[AlertKind, Severity]]) -> None:
    assert outcome(BodyTemperature(celsius)) == expected


def test_resident_overrides_apply() -> None:
    strict = Thresholds(glucose_level1_hypo_mmol_l=4.4)
    assert [(f.kind, f.severity) for f in evaluate_reading(reading(Glucose(4.2)), strict)] == [(HYPO, U)]
