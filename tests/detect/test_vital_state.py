"""The stateful vital-sign rules at and around every threshold and window edge.

Time is controlled through the readings themselves: each is measured and received ``at`` seconds
after T0 (monotonic clock = ``at``), so a test reads like a timeline.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from drivers.model import (
    BloodPressure,
    BodyTemperature,
    DeviceInfo,
    Glucose,
    GlucoseSample,
    HubTime,
    MealContext,
    Measurement,
    Reading,
    ReadingFlag,
    SpO2,
    TimeSource,
)
from gateway.alerts.model import Message
from gateway.config import Thresholds
from gateway.detect.vital_state import (
    CONTINUOUS_MAX_GAP_S,
    Escalation,
    VitalFinding,
    VitalsMonitor,
)
from gateway.detect.vitals import VitalRule
from gateway.respond import messages
from gateway.vocabulary import AlertKind, Severity

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MIN = 60.0
E, U, W = Severity.EMERGENCY, Severity.URGENT, Severity.WARNING
CRISIS_BP = BloodPressure(185, 100, None, 80)
CRISIS_THRESHOLD = "systolic_crisis_mmhg/diastolic_crisis_mmhg"
CRISIS_MESSAGE = Message(
    "血压极高（高血压危象范围），请静坐复测并联系医生",
    "Blood pressure in hypertensive-crisis range: rest, re-measure, call the doctor",
)
REMEASURE = VitalFinding(AlertKind.REMEASURE, W, VitalRule.REMEASURE, "device_flag", ("rec",))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def said(findings: list[VitalFinding]) -> list[Message]:
    """What the family reads of the findings (the texts are gateway.respond.messages')."""
    return [messages.vital(f) for f in findings]


def reading(m: Measurement, seconds: float, *flags: ReadingFlag, device: str = "dev-1",
            resident: str = "r-1") -> Reading:
    return Reading(device=DeviceInfo(device, "ble"), resident_id=resident, measurement=m,
                   measured_at=at(seconds), time_source=TimeSource.HUB,
                   received=HubTime(at(seconds), seconds, True), flags=frozenset(flags))


class Resident:
    """One resident's monitor with a record id per reading, like the hub gives it."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        own = thresholds or Thresholds()
        self.monitor = VitalsMonitor(lambda resident_id: own if resident_id == "r-1" else Thresholds())
        self.count = 0

    def observe(self, m: Measurement, seconds: float, *flags: ReadingFlag,
                device: str = "dev-1") -> list[VitalFinding]:
        self.count += 1
        return self.monitor.observe(reading(m, seconds, *flags, device=device), f"rec-{self.count}")

    def kinds(self, m: Measurement, seconds: float, *flags: ReadingFlag,
              device: str = "dev-1") -> list[tuple[AlertKind, Severity]]:
        return [(f.kind, f.severity) for f in self.observe(m, seconds, *flags, device=device)]


# --- SpO2, continuous ------------------------------------------------------------------------------


def test_continuous_spo2_below_90_for_30_s_is_urgent_once() -> None:
    r = Resident()
    for second in range(30):
        assert r.observe(SpO2(89, 70), float(second)) == [], second
    found = r.observe(SpO2(89, 70), 30.0)
    assert found == [VitalFinding(
        AlertKind.SPO2_LOW, U, VitalRule.SPO2_LOW_SUSTAINED, "spo2_low_percent/spo2_sustained_s", ("rec-31", "rec-1"),
    )]
    assert said(found) == [Message("血氧饱和度持续偏低，请尽快处理", "Oxygen saturation low for a while: act soon")]
    assert [r.observe(SpO2(88, 70), float(second)) for second in range(31, 120)] == [[]] * 89


def test_a_sample_at_90_restarts_the_sustained_clock() -> None:
    r = Resident()
    for second in range(20):
        assert r.observe(SpO2(89), float(second)) == []
    assert r.observe(SpO2(90), 20.0) == []
    for second in range(21, 51):
        assert r.observe(SpO2(89.9), float(second)) == [], second
    assert r.kinds(SpO2(89.9), 51.0) == [(AlertKind.SPO2_LOW, U)]


def test_sustained_time_comes_from_the_residents_thresholds() -> None:
    r = Resident(dataclasses.replace(Thresholds(), spo2_low_percent=92, spo2_sustained_s=60))
    for second in range(0, 60, 5):
        assert r.observe(SpO2(91), float(second)) == []
    assert r.kinds(SpO2(91), 60.0) == [(AlertKind.SPO2_LOW, U)]


def test_a_gap_of_10_s_still_continues_the_stream() -> None:
    r = Resident()
    for second in (0.0, CONTINUOUS_MAX_GAP_S, 2 * CONTINUOUS_MAX_GAP_S):
        assert r.observe(SpO2(88), second) == []
    assert r.kinds(SpO2(88), 3 * CONTINUOUS_MAX_GAP_S) == [(AlertKind.SPO2_LOW, U)]


def test_a_longer_gap_starts_a_new_series_which_counts_as_the_next_check() -> None:
    r = Resident()
    assert r.observe(SpO2(88), 0.0) == []
    assert r.observe(SpO2(88), 5.0) == []
    # The finger came out for a while: the stream's first sample and this one are two checks in a row.
    found = r.observe(SpO2(88), 15.1)
    assert found == [VitalFinding(
        AlertKind.SPO2_LOW, U, VitalRule.SPO2_LOW_SPOT_CHECKS, "spo2_low_percent", ("rec-3", "rec-1"),
    )]
    assert said(found) == [
        Message("连续两次测量血氧饱和度偏低，请尽快处理", "Oxygen saturation low on two checks in a row: act soon"),
    ]


def test_samples_from_another_device_neither_join_nor_break_a_stream() -> None:
    r = Resident()
    for second in range(0, 30, 2):
        assert r.observe(SpO2(88), float(second), device="oximeter-a") == []
        assert r.observe(SpO2(97), second + 1.0, device="oximeter-b") == []
    assert r.kinds(SpO2(88), 30.0, device="oximeter-a") == [(AlertKind.SPO2_LOW, U)]


def test_very_low_spo2_is_the_emergency_once_per_stream_not_also_the_urgent() -> None:
    r = Resident()
    assert r.kinds(SpO2(84), 0.0) == [(AlertKind.SPO2_LOW, E)]
    for second in range(1, 40):
        assert r.observe(SpO2(84), float(second)) == [], second


def test_pulse_out_of_range_in_a_stream_is_reported_once() -> None:
    r = Resident()
    assert r.kinds(SpO2(97, 140), 0.0) == [(AlertKind.PULSE_OUT_OF_RANGE, U)]
    assert [r.observe(SpO2(97, 141), float(s)) for s in range(1, 20)] == [[]] * 19


# --- SpO2, spot checks -----------------------------------------------------------------------------


def test_two_low_spot_checks_in_a_row_are_urgent() -> None:
    r = Resident()
    assert r.observe(SpO2(89), 0.0) == []
    assert r.observe(SpO2(96), 5 * MIN) == []           # a good check in between: not in a row
    assert r.observe(SpO2(89), 10 * MIN) == []
    assert r.observe(SpO2(90), 15 * MIN) == []          # 90 is not below 90
    assert r.observe(SpO2(89.9), 20 * MIN) == []
    found = r.observe(SpO2(85), 25 * MIN)
    assert found == [VitalFinding(
        AlertKind.SPO2_LOW, U, VitalRule.SPO2_LOW_SPOT_CHECKS, "spo2_low_percent", ("rec-6", "rec-5"),
    )]
    assert said(found) == [
        Message("连续两次测量血氧饱和度偏低，请尽快处理", "Oxygen saturation low on two checks in a row: act soon"),
    ]


def test_two_spot_checks_from_different_oximeters_are_in_a_row() -> None:
    r = Resident()
    assert r.observe(SpO2(88), 0.0, device="finger-a") == []
    assert r.kinds(SpO2(88), 3 * MIN, device="finger-b") == [(AlertKind.SPO2_LOW, U)]


def test_a_very_low_second_check_raises_only_the_emergency() -> None:
    r = Resident()
    assert r.observe(SpO2(88), 0.0) == []
    assert r.kinds(SpO2(80), 2 * MIN) == [(AlertKind.SPO2_LOW, E)]


# --- repeats escalate --------------------------------------------------------------------------------


def test_a_second_crisis_within_30_min_is_an_emergency() -> None:
    r = Resident()
    found = r.observe(CRISIS_BP, 0.0)
    assert found == [VitalFinding(AlertKind.HYPERTENSIVE_CRISIS, U, VitalRule.HYPERTENSIVE_CRISIS,
                                  CRISIS_THRESHOLD, ("rec-1",))]
    assert said(found) == [CRISIS_MESSAGE]
    found = r.observe(CRISIS_BP, 30 * MIN)
    assert found == [VitalFinding(
        AlertKind.HYPERTENSIVE_CRISIS, E, VitalRule.HYPERTENSIVE_CRISIS,
        CRISIS_THRESHOLD, ("rec-2", "rec-1"), (Escalation.REPEATED,), 30.0,
    )]
    assert said(found) == [
        Message(CRISIS_MESSAGE.zh + "（30分钟内再次出现）", CRISIS_MESSAGE.en + " (again within 30 min)"),
    ]
    # A third is measured against the second.
    assert r.kinds(CRISIS_BP, 59 * MIN) == [(AlertKind.HYPERTENSIVE_CRISIS, E)]


def test_a_crisis_just_after_the_window_is_urgent_again() -> None:
    r = Resident()
    assert r.kinds(CRISIS_BP, 0.0) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert r.kinds(BloodPressure(140, 90), 10 * MIN) == []
    assert r.kinds(CRISIS_BP, 30 * MIN + 1) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]


def test_the_window_comes_from_the_residents_thresholds() -> None:
    r = Resident(dataclasses.replace(Thresholds(), crisis_repeat_window_min=10))
    assert r.kinds(CRISIS_BP, 0.0) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert r.kinds(CRISIS_BP, 10 * MIN + 1) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert said(r.observe(CRISIS_BP, 20 * MIN))[0].en.endswith(" (again within 10 min)")


def test_readings_from_memory_arriving_out_of_order_still_count_as_repeats() -> None:
    r = Resident()
    assert r.kinds(CRISIS_BP, 20 * MIN) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert r.kinds(CRISIS_BP, 0.0) == [(AlertKind.HYPERTENSIVE_CRISIS, E)]


def test_a_late_reading_from_memory_does_not_hide_the_newer_crisis() -> None:
    r = Resident()
    assert r.kinds(CRISIS_BP, 40 * MIN) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert r.kinds(CRISIS_BP, 0.0) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert r.kinds(CRISIS_BP, 65 * MIN) == [(AlertKind.HYPERTENSIVE_CRISIS, E)]


def test_repeats_are_per_resident() -> None:
    monitor = VitalsMonitor(lambda resident_id: Thresholds())
    first = monitor.observe(reading(CRISIS_BP, 0.0, resident="r-1"), "rec-1")
    other = monitor.observe(reading(CRISIS_BP, 60.0, resident="r-2", device="dev-2"), "rec-2")
    assert [(f.severity, f.record_ids) for f in first + other] == [(U, ("rec-1",)), (U, ("rec-2",))]


@pytest.mark.parametrize(("measurement", "kind"), [
    (Glucose(3.5), AlertKind.HYPOGLYCAEMIA),
    (BloodPressure(85, 55, None, 70), AlertKind.HYPOTENSION),
    (BloodPressure(120, 80, None, 35), AlertKind.PULSE_OUT_OF_RANGE),
])
def test_urgent_acute_kinds_escalate_when_repeated(measurement: Measurement, kind: AlertKind) -> None:
    r = Resident()
    assert r.kinds(measurement, 0.0) == [(kind, U)]
    assert r.kinds(measurement, 15 * MIN) == [(kind, E)]


def test_repeated_low_spo2_escalates() -> None:
    r = Resident()
    assert r.observe(SpO2(88), 0.0) == []
    assert r.kinds(SpO2(88), 5 * MIN) == [(AlertKind.SPO2_LOW, U)]
    assert r.kinds(SpO2(88), 10 * MIN) == [(AlertKind.SPO2_LOW, E)]


@pytest.mark.parametrize(("measurement", "kind"), [
    (Glucose(17.0), AlertKind.HYPERGLYCAEMIA),
    (BodyTemperature(39.6), AlertKind.FEVER),
    (BodyTemperature(34.5), AlertKind.HYPOTHERMIA),
])
def test_slow_conditions_stay_urgent_when_re_checked(measurement: Measurement, kind: AlertKind) -> None:
    r = Resident()
    assert r.kinds(measurement, 0.0) == [(kind, U)]
    assert r.kinds(measurement, 15 * MIN) == [(kind, U)]


def test_warnings_do_not_escalate() -> None:
    r = Resident()
    assert r.kinds(BloodPressure(170, 112), 0.0) == [(AlertKind.HYPERTENSION_GRADE3, W)]
    assert r.kinds(BloodPressure(170, 112), 5 * MIN) == [(AlertKind.HYPERTENSION_GRADE3, W)]


# --- crisis and fall ---------------------------------------------------------------------------------


def test_a_crisis_after_a_fall_is_an_emergency() -> None:
    r = Resident()
    assert r.monitor.note_fall("r-1", at(0.0)) == []
    found = r.observe(CRISIS_BP, 30 * MIN)
    assert found == [VitalFinding(
        AlertKind.HYPERTENSIVE_CRISIS, E, VitalRule.HYPERTENSIVE_CRISIS,
        CRISIS_THRESHOLD, ("rec-1",), (Escalation.WITH_FALL,), 30.0,
    )]
    assert said(found) == [
        Message(CRISIS_MESSAGE.zh + "（同时发生跌倒）", CRISIS_MESSAGE.en + " (together with a fall)"),
    ]
    assert r.monitor.note_fall("r-1", at(31 * MIN)) == []  # that crisis is an emergency already


def test_a_fall_after_a_crisis_escalates_the_crisis_once() -> None:
    r = Resident()
    assert r.kinds(CRISIS_BP, 0.0) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    found = r.monitor.note_fall("r-1", at(12 * MIN))
    assert found == [VitalFinding(
        AlertKind.HYPERTENSIVE_CRISIS, E, VitalRule.HYPERTENSIVE_CRISIS_BEFORE_FALL,
        CRISIS_THRESHOLD, ("rec-1",), (Escalation.WITH_FALL,), 30.0,
    )]
    assert said(found) == [
        Message("血压极高（高血压危象范围）（同时发生跌倒）",
                "Blood pressure in hypertensive-crisis range (together with a fall)"),
    ]
    assert r.monitor.note_fall("r-1", at(14 * MIN)) == []


def test_a_fall_outside_the_window_does_not_escalate() -> None:
    r = Resident()
    assert r.kinds(CRISIS_BP, 0.0) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]
    assert r.monitor.note_fall("r-1", at(30 * MIN + 1)) == []
    assert r.monitor.note_fall("r-2", at(1.0)) == []  # another resident's fall
    assert r.kinds(CRISIS_BP, 61 * MIN + 2) == [(AlertKind.HYPERTENSIVE_CRISIS, U)]


def test_a_repeated_crisis_with_a_fall_says_both() -> None:
    r = Resident()
    r.observe(CRISIS_BP, 0.0)
    r.monitor.note_fall("r-1", at(40 * MIN))  # the first crisis is out of the window by now
    assert r.observe(CRISIS_BP, 20 * MIN)[0].escalated == (Escalation.REPEATED, Escalation.WITH_FALL)


# --- re-measure requests -----------------------------------------------------------------------------


def test_a_flagged_reading_asks_for_a_re_measure_once_per_device_per_window() -> None:
    r = Resident()
    found = r.observe(CRISIS_BP, 0.0, ReadingFlag.CUFF_LOOSE)
    assert found == [dataclasses.replace(REMEASURE, record_ids=("rec-1",))]
    assert said(found) == [
        Message("测量结果不可靠（设备提示），请重新测量", "The device flagged this measurement: please measure again"),
    ]
    assert r.observe(CRISIS_BP, 5 * MIN, ReadingFlag.BODY_MOVEMENT) == []
    assert r.observe(CRISIS_BP, 30 * MIN - 1, ReadingFlag.CUFF_LOOSE) == []
    assert r.kinds(Glucose(2.0), 6 * MIN, ReadingFlag.PARITY_ERROR, device="meter") == [(AlertKind.REMEASURE, W)]
    assert r.kinds(CRISIS_BP, 30 * MIN, ReadingFlag.CUFF_LOOSE) == [(AlertKind.REMEASURE, W)]


def test_a_good_reading_re_arms_the_re_measure_request() -> None:
    r = Resident()
    assert r.kinds(CRISIS_BP, 0.0, ReadingFlag.CUFF_LOOSE) == [(AlertKind.REMEASURE, W)]
    assert r.kinds(BloodPressure(130, 85), 2 * MIN) == []
    assert r.kinds(CRISIS_BP, 4 * MIN, ReadingFlag.CUFF_LOOSE) == [(AlertKind.REMEASURE, W)]


def test_flagged_samples_neither_extend_nor_break_a_low_spo2_run() -> None:
    r = Resident()
    for second in range(10):
        assert r.observe(SpO2(88), float(second)) == []
    assert r.kinds(SpO2(99), 10.0, ReadingFlag.MEASUREMENT_UNRELIABLE) == [(AlertKind.REMEASURE, W)]
    for second in range(11, 30):
        assert r.observe(SpO2(88), float(second), ReadingFlag.MEASUREMENT_UNRELIABLE) == []
    assert r.kinds(SpO2(88), 30.0) == [(AlertKind.SPO2_LOW, U)]


def test_control_solution_is_never_evaluated_and_leaves_no_trace() -> None:
    r = Resident()
    control = Glucose(2.0, sample=GlucoseSample.CONTROL_SOLUTION)
    assert r.observe(control, 0.0, ReadingFlag.CONTROL_SOLUTION) == []
    assert r.kinds(Glucose(3.5), 60.0) == [(AlertKind.HYPOGLYCAEMIA, U)]


# --- glucose meal context ----------------------------------------------------------------------------


@pytest.mark.parametrize(("meal", "mmol_l", "expected"), [
    (MealContext.FASTING, 13.9, None),
    (MealContext.FASTING, 13.91, ("glucose_fasting_high_mmol_l", VitalRule.GLUCOSE_FASTING_HIGH,
                                  "空腹血糖偏高", "Fasting blood glucose high")),
    (MealContext.PREPRANDIAL, 14.0,
     ("glucose_fasting_high_mmol_l", VitalRule.GLUCOSE_PREPRANDIAL_HIGH,
      "餐前血糖偏高", "Blood glucose before a meal high")),
    (MealContext.POSTPRANDIAL, 13.9, None),
    (MealContext.POSTPRANDIAL, 13.91,
     ("glucose_postprandial_high_mmol_l", VitalRule.GLUCOSE_POSTPRANDIAL_HIGH,
      "餐后血糖偏高", "Blood glucose after a meal high")),
    (MealContext.UNKNOWN, 13.91, ("glucose_high_mmol_l", VitalRule.GLUCOSE_HIGH, "血糖偏高", "Blood glucose high")),
    (MealContext.BEDTIME, 13.91, ("glucose_high_mmol_l", VitalRule.GLUCOSE_HIGH, "血糖偏高", "Blood glucose high")),
])
def test_the_high_warning_names_the_meal_at_the_sheets_default(
    meal: MealContext, mmol_l: float, expected: tuple[str, VitalRule, str, str] | None
) -> None:
    findings = Resident().observe(Glucose(mmol_l, meal), 0.0)
    if expected is None:
        assert findings == []
    else:
        threshold, rule, zh, en = expected
        assert findings == [VitalFinding(AlertKind.HYPERGLYCAEMIA, W, rule, threshold, ("rec-1",))]
        assert said(findings) == [Message(zh, en)]


def test_a_doctor_may_set_the_meal_thresholds_either_side_of_the_default() -> None:
    r = Resident(dataclasses.replace(
        Thresholds(), glucose_fasting_high_mmol_l=10.0, glucose_postprandial_high_mmol_l=15.0))
    assert r.kinds(Glucose(10.0, MealContext.FASTING), 0.0) == []
    assert r.kinds(Glucose(10.01, MealContext.FASTING), 60.0) == [(AlertKind.HYPERGLYCAEMIA, W)]
    assert r.kinds(Glucose(14.5, MealContext.POSTPRANDIAL), 120.0) == []
    assert r.kinds(Glucose(15.01, MealContext.POSTPRANDIAL), 180.0) == [(AlertKind.HYPERGLYCAEMIA, W)]
    assert r.kinds(Glucose(14.5, MealContext.CASUAL), 240.0) == [(AlertKind.HYPERGLYCAEMIA, W)]


def test_urgent_and_emergency_glucose_levels_hold_for_every_meal() -> None:
    r = Resident(dataclasses.replace(Thresholds(), glucose_postprandial_high_mmol_l=16.0))
    assert r.kinds(Glucose(16.7, MealContext.POSTPRANDIAL), 0.0) == [(AlertKind.HYPERGLYCAEMIA, U)]
    assert r.kinds(Glucose(3.0, MealContext.FASTING), 60.0) == [(AlertKind.HYPOGLYCAEMIA, U)]
    assert r.kinds(Glucose(35.0, MealContext.FASTING), 120.0) == [(AlertKind.HYPERGLYCAEMIA, E)]
