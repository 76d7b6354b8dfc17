"""Single-reading vital-sign rules (clinical-thresholds.md), table-driven and pure.

Each rule is a row: which reading type, the test against the resident's
thresholds, the alert kind and severity, and which rule it is (:class:`VitalRule`: what the
family's message is written from, in :mod:`gateway.respond.messages`). Rows of one group are
ordered most severe first and the first match wins, so a glucose of 2.5 mmol/L
raises one level-2 alert, not a level-2 and a level-1 alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from drivers.model import (
    REMEASURE_FLAGS,
    BloodPressure,
    BodyTemperature,
    Glucose,
    Measurement,
    Reading,
    ReadingFlag,
    SpO2,
)
from gateway.vocabulary import AlertKind, Severity


class VitalThresholds(Protocol):
    """The threshold fields the rules read (gateway.config's Thresholds has them all)."""

    @property
    def glucose_level2_hypo_mmol_l(self) -> float: ...
    @property
    def glucose_level1_hypo_mmol_l(self) -> float: ...
    @property
    def glucose_high_mmol_l(self) -> float: ...
    @property
    def glucose_severe_hyper_mmol_l(self) -> float: ...
    @property
    def glucose_crisis_mmol_l(self) -> float: ...
    @property
    def systolic_crisis_mmhg(self) -> float: ...
    @property
    def diastolic_crisis_mmhg(self) -> float: ...
    @property
    def diastolic_grade3_mmhg(self) -> float: ...
    @property
    def systolic_low_mmhg(self) -> float: ...
    @property
    def pulse_low_bpm(self) -> float: ...
    @property
    def pulse_high_bpm(self) -> float: ...
    @property
    def spo2_very_low_percent(self) -> float: ...
    @property
    def fever_warning_c(self) -> float: ...
    @property
    def fever_urgent_c(self) -> float: ...
    @property
    def hypothermia_c(self) -> float: ...


class VitalRule(StrEnum):
    """Which rule found something: one per text the family reads (:mod:`gateway.respond.messages`).

    The single-reading rules are this module's; the ones that need history (a meal's own high, low
    SpO2 over time, a crisis recalled by a fall) are :mod:`gateway.detect.vital_state`'s.
    """

    GLUCOSE_LEVEL2_HYPO = "glucose_level2_hypo"
    GLUCOSE_LEVEL1_HYPO = "glucose_level1_hypo"
    GLUCOSE_CRISIS = "glucose_crisis"
    GLUCOSE_SEVERE_HYPER = "glucose_severe_hyper"
    GLUCOSE_HIGH = "glucose_high"
    GLUCOSE_FASTING_HIGH = "glucose_fasting_high"
    GLUCOSE_PREPRANDIAL_HIGH = "glucose_preprandial_high"
    GLUCOSE_POSTPRANDIAL_HIGH = "glucose_postprandial_high"
    HYPERTENSIVE_CRISIS = "hypertensive_crisis"
    HYPERTENSIVE_CRISIS_BEFORE_FALL = "hypertensive_crisis_before_fall"
    """A crisis measured earlier, made an emergency by the fall confirmed after it (no reading now)."""
    HYPERTENSION_GRADE3 = "hypertension_grade3"
    HYPOTENSION = "hypotension"
    PULSE_OUT_OF_RANGE = "pulse_out_of_range"
    SPO2_VERY_LOW = "spo2_very_low"
    SPO2_LOW_SUSTAINED = "spo2_low_sustained"
    SPO2_LOW_SPOT_CHECKS = "spo2_low_spot_checks"
    FEVER_HIGH = "fever_high"
    FEVER = "fever"
    HYPOTHERMIA = "hypothermia"
    REMEASURE = "remeasure"


@dataclass(frozen=True)
class Finding:
    """What a rule concluded about one reading; the layer above turns it into an Alert."""

    kind: AlertKind
    severity: Severity
    rule: VitalRule
    threshold: str
    """Name of the threshold crossed (evidence for the family doctor)."""


Test = Callable[[Measurement, frozenset[ReadingFlag], VitalThresholds], bool]


@dataclass(frozen=True)
class Rule:
    group: str
    measurement: type
    test: Test
    kind: AlertKind
    severity: Severity
    threshold: str
    rule: VitalRule


def _glucose(m: Measurement) -> float:
    assert isinstance(m, Glucose)
    return m.mmol_l


def _bp(m: Measurement) -> BloodPressure:
    assert isinstance(m, BloodPressure)
    return m


def _pulse(m: Measurement) -> float | None:
    assert isinstance(m, BloodPressure | SpO2)
    return m.pulse


def _spo2(m: Measurement) -> float:
    assert isinstance(m, SpO2)
    return m.spo2


def _celsius(m: Measurement) -> float:
    assert isinstance(m, BodyTemperature)
    return m.celsius


_BELOW = ReadingFlag.BELOW_RANGE
_ABOVE = ReadingFlag.ABOVE_RANGE

RULES: tuple[Rule, ...] = (
    # Glucose, low side. A meter's "LO" is beyond the emergency bound on that side.
    Rule("glucose-low", Glucose,
         lambda m, f, t: _BELOW in f or _glucose(m) < t.glucose_level2_hypo_mmol_l,
         AlertKind.HYPOGLYCAEMIA, Severity.EMERGENCY, "glucose_level2_hypo_mmol_l",
         VitalRule.GLUCOSE_LEVEL2_HYPO),
    Rule("glucose-low", Glucose, lambda m, f, t: _glucose(m) < t.glucose_level1_hypo_mmol_l,
         AlertKind.HYPOGLYCAEMIA, Severity.URGENT, "glucose_level1_hypo_mmol_l",
         VitalRule.GLUCOSE_LEVEL1_HYPO),
    # Glucose, high side. A meter's "HI" is beyond the crisis bound.
    Rule("glucose-high", Glucose,
         lambda m, f, t: _ABOVE in f or _glucose(m) >= t.glucose_crisis_mmol_l,
         AlertKind.HYPERGLYCAEMIA, Severity.EMERGENCY, "glucose_crisis_mmol_l",
         VitalRule.GLUCOSE_CRISIS),
    Rule("glucose-high", Glucose, lambda m, f, t: _glucose(m) >= t.glucose_severe_hyper_mmol_l,
         AlertKind.HYPERGLYCAEMIA, Severity.URGENT, "glucose_severe_hyper_mmol_l",
         VitalRule.GLUCOSE_SEVERE_HYPER),
    Rule("glucose-high", Glucose, lambda m, f, t: _glucose(m) > t.glucose_high_mmol_l,
         AlertKind.HYPERGLYCAEMIA, Severity.WARNING, "glucose_high_mmol_l",
         VitalRule.GLUCOSE_HIGH),
    # Blood pressure.
    Rule("bp-high", BloodPressure,
         lambda m, f, t: _bp(m).systolic >= t.systolic_crisis_mmhg
         or _bp(m).diastolic >= t.diastolic_crisis_mmhg,
         AlertKind.HYPERTENSIVE_CRISIS, Severity.URGENT, "systolic_crisis_mmhg/diastolic_crisis_mmhg",
         VitalRule.HYPERTENSIVE_CRISIS),
    Rule("bp-high", BloodPressure,
         lambda m, f, t: _bp(m).diastolic >= t.diastolic_grade3_mmhg,
         AlertKind.HYPERTENSION_GRADE3, Severity.WARNING, "diastolic_grade3_mmhg",
         VitalRule.HYPERTENSION_GRADE3),
    Rule("bp-low", BloodPressure, lambda m, f, t: _bp(m).systolic < t.systolic_low_mmhg,
         AlertKind.HYPOTENSION, Severity.URGENT, "systolic_low_mmhg",
         VitalRule.HYPOTENSION),
    Rule("pulse", BloodPressure | SpO2,  # type: ignore[arg-type]
         lambda m, f, t: (p := _pulse(m)) is not None and not t.pulse_low_bpm <= p <= t.pulse_high_bpm,
         AlertKind.PULSE_OUT_OF_RANGE, Severity.URGENT, "pulse_low_bpm/pulse_high_bpm",
         VitalRule.PULSE_OUT_OF_RANGE),
    # Oxygen saturation: a single very low spot check. The sustained < 90 % rule needs a series
    # and lives with the stateful rules.
    Rule("spo2", SpO2, lambda m, f, t: _spo2(m) < t.spo2_very_low_percent,
         AlertKind.SPO2_LOW, Severity.EMERGENCY, "spo2_very_low_percent",
         VitalRule.SPO2_VERY_LOW),
    # Temperature.
    Rule("temperature", BodyTemperature, lambda m, f, t: _celsius(m) >= t.fever_urgent_c,
         AlertKind.FEVER, Severity.URGENT, "fever_urgent_c", VitalRule.FEVER_HIGH),
    Rule("temperature", BodyTemperature, lambda m, f, t: _celsius(m) >= t.fever_warning_c,
         AlertKind.FEVER, Severity.WARNING, "fever_warning_c", VitalRule.FEVER),
    Rule("temperature", BodyTemperature, lambda m, f, t: _celsius(m) < t.hypothermia_c,
         AlertKind.HYPOTHERMIA, Severity.URGENT, "hypothermia_c", VitalRule.HYPOTHERMIA),
)

_REMEASURE = Finding(AlertKind.REMEASURE, Severity.WARNING, VitalRule.REMEASURE, "device_flag")


def evaluate_reading(reading: Reading, thresholds: VitalThresholds) -> list[Finding]:
    """The findings for one reading: at most one per rule group.

    Control-solution results are never evaluated. A reading the device itself
    flagged (cuff loose, body movement, parity error, ...) only asks for a
    re-measure: its numbers are not trusted enough to alarm on.
    """
    if not reading.evaluable:
        return []
    if reading.flags & REMEASURE_FLAGS:
        return [_REMEASURE]
    findings: list[Finding] = []
    matched_groups: set[str] = set()
    for rule in RULES:
        if rule.group in matched_groups or not isinstance(reading.measurement, rule.measurement):
            continue
        if rule.test(reading.measurement, reading.flags, thresholds):
            matched_groups.add(rule.group)
            findings.append(Finding(rule.kind, rule.severity, rule.rule, rule.threshold))
    return findings
