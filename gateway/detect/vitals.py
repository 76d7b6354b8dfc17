"""Single-reading vital-sign rules (clinical-thresholds.md), table-driven and pure.

Each rule is a row: which reading type, the test against the resident's
thresholds, the alert kind and severity, and the message. Rows of one group are
ordered most severe first and the first match wins, so a glucose of 2.5 mmol/L
raises one level-2 alert, not a level-2 and a level-1 alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from gateway.alerts.model import Message
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


@dataclass(frozen=True)
class Finding:
    """What a rule concluded about one reading; the alert service turns it into an Alert."""

    kind: AlertKind
    severity: Severity
    message: Message
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
    zh: str
    en: str


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
         "严重低血糖（2级），请立即处理", "Level 2 hypoglycaemia: act now"),
    Rule("glucose-low", Glucose, lambda m, f, t: _glucose(m) < t.glucose_level1_hypo_mmol_l,
         AlertKind.HYPOGLYCAEMIA, Severity.URGENT, "glucose_level1_hypo_mmol_l",
         "低血糖（1级），请尽快进食含糖食物并复测", "Level 1 hypoglycaemia: take sugar and re-measure"),
    # Glucose, high side. A meter's "HI" is beyond the crisis bound.
    Rule("glucose-high", Glucose,
         lambda m, f, t: _ABOVE in f or _glucose(m) >= t.glucose_crisis_mmol_l,
         AlertKind.HYPERGLYCAEMIA, Severity.EMERGENCY, "glucose_crisis_mmol_l",
         "血糖极高（高血糖危象范围），请立即就医", "Blood glucose in hyperglycaemic-crisis range: seek care now"),
    Rule("glucose-high", Glucose, lambda m, f, t: _glucose(m) >= t.glucose_severe_hyper_mmol_l,
         AlertKind.HYPERGLYCAEMIA, Severity.URGENT, "glucose_severe_hyper_mmol_l",
         "严重高血糖，请检测酮体", "Severe hyperglycaemia: check ketones"),
    Rule("glucose-high", Glucose, lambda m, f, t: _glucose(m) > t.glucose_high_mmol_l,
         AlertKind.HYPERGLYCAEMIA, Severity.WARNING, "glucose_high_mmol_l",
         "血糖偏高", "Blood glucose high"),
    # Blood pressure.
    Rule("bp-high", BloodPressure,
         lambda m, f, t: _bp(m).systolic >= t.systolic_crisis_mmhg
         or _bp(m).diastolic >= t.diastolic_crisis_mmhg,
         AlertKind.HYPERTENSIVE_CRISIS, Severity.URGENT, "systolic_crisis_mmhg/diastolic_crisis_mmhg",
         "血压极高（高血压危象范围），请静坐复测并联系医生",
         "Blood pressure in hypertensive-crisis range: rest, re-measure, call the doctor"),
    Rule("bp-high", BloodPressure,
         lambda m, f, t: _bp(m).diastolic >= t.diastolic_grade3_mmhg,
         AlertKind.HYPERTENSION_GRADE3, Severity.WARNING, "diastolic_grade3_mmhg",
         "血压很高（3级高血压范围）", "Blood pressure very high (grade 3 range)"),
    Rule("bp-low", BloodPressure, lambda m, f, t: _bp(m).systolic < t.systolic_low_mmhg,
         AlertKind.HYPOTENSION, Severity.URGENT, "systolic_low_mmhg",
         "血压过低", "Blood pressure low"),
    Rule("pulse", BloodPressure | SpO2,  # type: ignore[arg-type]
         lambda m, f, t: (p := _pulse(m)) is not None and not t.pulse_low_bpm <= p <= t.pulse_high_bpm,
         AlertKind.PULSE_OUT_OF_RANGE, Severity.URGENT, "pulse_low_bpm/pulse_high_bpm",
         "脉率异常", "Pulse rate out of range"),
    # Oxygen saturation: a single very low spot check. The sustained < 90 % rule needs a series
    # and lives with the stateful rules.
    Rule("spo2", SpO2, lambda m, f, t: _spo2(m) < t.spo2_very_low_percent,
         AlertKind.SPO2_LOW, Severity.EMERGENCY, "spo2_very_low_percent",
         "血氧饱和度极低，请立即处理", "Oxygen saturation very low: act now"),
    # Temperature.
    Rule("temperature", BodyTemperature, lambda m, f, t: _celsius(m) >= t.fever_urgent_c,
         AlertKind.FEVER, Severity.URGENT, "fever_urgent_c", "高热", "High fever"),
    Rule("temperature", BodyTemperature, lambda m, f, t: _celsius(m) >= t.fever_warning_c,
         AlertKind.FEVER, Severity.WARNING, "fever_warning_c", "发热", "Fever"),
    Rule("temperature", BodyTemperature, lambda m, f, t: _celsius(m) < t.hypothermia_c,
         AlertKind.HYPOTHERMIA, Severity.URGENT, "hypothermia_c", "体温过低", "Body temperature low"),
)

_REMEASURE = Finding(
    AlertKind.REMEASURE, Severity.WARNING,
    Message("测量结果不可靠（设备提示），请重新测量", "The device flagged this measurement: please measure again"),
    "device_flag",
)


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
            findings.append(Finding(rule.kind, rule.severity, Message(rule.zh, rule.en), rule.threshold))
    return findings
