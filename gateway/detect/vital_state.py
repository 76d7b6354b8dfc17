"""Vital-sign rules that need history (clinical-thresholds.md), on top of :func:`evaluate_reading`.

Pure and clock-injected: the only times used are the ones the records carry (a reading's
``measured_at`` and ``received.monotonic``, a fall's time given to :meth:`VitalsMonitor.note_fall`).

What history adds, per resident:

* **SpO2 low, sustained** (urgent): SpO2 below ``spo2_low_percent`` on consecutive samples of one
  continuous oximeter spanning at least ``spo2_sustained_s`` with no sample at or above it in between;
  or two spot checks in a row below it. A reading continues its device's *stream* when it is
  measured at most :data:`CONTINUOUS_MAX_GAP_S` after the previous one, or, for the window summaries
  of a continuous oximeter (``Reading.continuous``), at most :data:`CONTINUOUS_SUMMARY_MAX_GAP_S`
  after; anything else is a spot check (the first sample of a stream counts as one). The single
  < 85 % emergency stays in :mod:`gateway.detect.vitals`.
* **One alert per stream**: a continuous device repeats its finding every second; a finding of the
  same kind and severity already reported in the current stream is not reported again (the alert
  lifecycle repeats it until someone acknowledges).
* **Repeat escalation**: an urgent finding of a kind in :data:`ESCALATE_ON_REPEAT` measured within
  ``crisis_repeat_window_min`` of the previous urgent one of that kind becomes an emergency. The sheet
  sources this for hypertensive crisis; hypoglycaemia, hypotension, pulse out of range and low SpO2
  are added because each is acute and the first response (sugar, sitting down, oxygen) should have
  changed it: still there at the re-check means the response did not work. Severe hyperglycaemia,
  fever and hypothermia are left out: they change over hours even with the right care, so a
  re-check within the window would turn every correct re-measure into an emergency.
* **Crisis with a fall**: a hypertensive crisis within the window of a confirmed fall, either order,
  is an emergency (sheet).
* **Re-measure without spam**: a device-flagged reading asks for a re-measure once per device per
  ``remeasure_quiet_min`` (hub receive time), re-armed early by a good reading from that device.
* **Meal context**: the sheet has one sourced high level for every meal context (> 13.9 mmol/L,
  time-above-range level 2). ADA's fasting >= 7.0 mmol/L is a diagnostic criterion and its
  post-meal < 10.0 a treatment target, neither an alarm level, so no new default alarm is made
  here: fasting/before-meal and after-meal readings are compared with their own thresholds
  (``glucose_fasting_high_mmol_l``, ``glucose_postprandial_high_mmol_l``), which default to the
  sheet's 13.9 and only a family doctor lowers, and the finding names the meal (its :class:`VitalRule`).

Measurement times are compared as distances (``abs``): readings downloaded from device memory
arrive out of order, and two crises 20 minutes apart are a repeat whichever arrived first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from drivers.model import REMEASURE_FLAGS, Glucose, MealContext, Reading, SpO2
from gateway.detect.vitals import Finding, VitalRule, VitalThresholds, evaluate_reading
from gateway.vocabulary import AlertKind, Severity

CONTINUOUS_MAX_GAP_S = 10.0
"""Continuous oximeters notify about once a second; a longer gap means the finger came out or the
link dropped. No spot-check device measures twice within 10 s (a cuff takes 30 s or more, an
oximeter spot check needs the finger in for several seconds)."""
CONTINUOUS_SUMMARY_MAX_GAP_S = 15.0
"""A continuous oximeter's session hands over the median of each 10 s window (drivers.ble.streams.
SpO2Window). A window closes on its last sample and the next opens on the one after, so at 1 Hz
summaries come 11 s apart, beyond CONTINUOUS_MAX_GAP_S: each would have counted as a spot check,
two low ones an urgent alert 21 s in and every later one an escalated emergency. A window missing
altogether (finger out for 10 s) still ends the stream, as a 10 s gap between samples does."""

ESCALATE_ON_REPEAT = frozenset(
    {
        AlertKind.HYPERTENSIVE_CRISIS,
        AlertKind.HYPOGLYCAEMIA,
        AlertKind.HYPOTENSION,
        AlertKind.PULSE_OUT_OF_RANGE,
        AlertKind.SPO2_LOW,
    }
)
"""Urgent kinds that become an emergency when repeated within the window (see the module doc)."""


class StatefulThresholds(VitalThresholds, Protocol):
    """The threshold fields the stateful rules read on top of the single-reading ones."""

    @property
    def glucose_fasting_high_mmol_l(self) -> float: ...
    @property
    def glucose_postprandial_high_mmol_l(self) -> float: ...
    @property
    def spo2_low_percent(self) -> float: ...
    @property
    def spo2_sustained_s(self) -> float: ...
    @property
    def crisis_repeat_window_min(self) -> float: ...
    @property
    def remeasure_quiet_min(self) -> float: ...


class Escalation(StrEnum):
    """Why a finding is more severe than its single-reading rule says."""

    REPEATED = "repeated_within_window"
    WITH_FALL = "with_fall"


@dataclass(frozen=True, slots=True)
class VitalFinding:
    """A finding with the records behind it; the layer above raises one alert for each."""

    kind: AlertKind
    severity: Severity
    rule: VitalRule
    """The rule that found it (for an escalated finding, the one that found it before the escalation)."""
    threshold: str
    """Name of the threshold crossed (evidence for the family doctor)."""
    record_ids: tuple[str, ...]
    """The record that triggered it first, then the earlier records the rule used."""
    escalated: tuple[Escalation, ...] = ()
    window_min: float | None = None
    """When escalated: the resident's ``crisis_repeat_window_min`` the repeat or the fall fell within."""

    def __post_init__(self) -> None:
        if self.escalated and self.window_min is None:
            raise ValueError("an escalated finding carries the window it was judged over")


@dataclass(frozen=True, slots=True)
class _MealHigh:
    threshold: str
    rule: VitalRule


_ANY_MEAL_HIGH = _MealHigh("glucose_high_mmol_l", VitalRule.GLUCOSE_HIGH)
_MEAL_HIGH: dict[MealContext, _MealHigh] = {
    MealContext.FASTING: _MealHigh("glucose_fasting_high_mmol_l", VitalRule.GLUCOSE_FASTING_HIGH),
    MealContext.PREPRANDIAL: _MealHigh("glucose_fasting_high_mmol_l", VitalRule.GLUCOSE_PREPRANDIAL_HIGH),
    MealContext.POSTPRANDIAL: _MealHigh("glucose_postprandial_high_mmol_l", VitalRule.GLUCOSE_POSTPRANDIAL_HIGH),
}


@dataclass
class _Stream:
    """Consecutive readings of one device, each within CONTINUOUS_MAX_GAP_S of the previous."""

    last_at: datetime
    reported: set[tuple[AlertKind, Severity]] = field(default_factory=set)


@dataclass
class _LowSpo2Run:
    started_at: datetime
    first_record_id: str
    alarmed: bool = False


@dataclass
class _Crisis:
    at: datetime
    record_id: str
    escalated_with_fall: bool = False


@dataclass
class _Resident:
    streams: dict[str, _Stream] = field(default_factory=dict)
    low_spo2_runs: dict[str, _LowSpo2Run] = field(default_factory=dict)
    last_low_spot_check: str | None = None
    """Record id of the latest spot check if it was low; None once one is not."""
    last_urgent: dict[AlertKind, tuple[datetime, str]] = field(default_factory=dict)
    last_crisis: _Crisis | None = None
    last_fall: datetime | None = None
    remeasure_asked: dict[str, float] = field(default_factory=dict)
    """Device id -> hub monotonic time of the last re-measure request."""


class VitalsMonitor:
    """The stateful vital-sign rules for every resident of the hub (one event loop, no locking)."""

    def __init__(self, thresholds_for: Callable[[str], StatefulThresholds]) -> None:
        self._thresholds_for = thresholds_for
        self._residents: dict[str, _Resident] = {}

    def observe(self, reading: Reading, record_id: str) -> list[VitalFinding]:
        """The findings for a fresh reading (already accepted as ``record_id``), history included."""
        if not reading.evaluable:
            return []
        thresholds = self._thresholds_for(reading.resident_id)
        resident = self._residents.setdefault(reading.resident_id, _Resident())
        stream, in_stream = _follow_stream(resident, reading)
        if reading.flags & REMEASURE_FLAGS:
            return _remeasure(resident, reading, record_id, thresholds)
        resident.remeasure_asked.pop(reading.device.id, None)
        findings = [_from_single(f, record_id) for f in evaluate_reading(reading, thresholds)]
        findings = _refine_glucose_high(reading, record_id, findings, thresholds)
        low_spo2 = _spo2_low(resident, reading, record_id, in_stream, thresholds)
        if not any(f.kind is AlertKind.SPO2_LOW for f in findings):  # the < 85 % emergency says more
            findings.extend(low_spo2)
        fresh = [f for f in findings if (f.kind, f.severity) not in stream.reported]
        stream.reported.update((f.kind, f.severity) for f in fresh)
        return [_escalate(resident, reading.measured_at, f, thresholds) for f in fresh]

    def note_fall(self, resident_id: str, t: datetime) -> list[VitalFinding]:
        """A confirmed fall (not one cancelled in its window) happened at ``t`` (hub wall clock, UTC).

        Returns the emergency for a hypertensive crisis measured within the window before it;
        a crisis measured after it is escalated when it arrives.
        """
        resident = self._residents.setdefault(resident_id, _Resident())
        resident.last_fall = t
        crisis = resident.last_crisis
        window = _window(self._thresholds_for(resident_id))
        if crisis is None or crisis.escalated_with_fall or abs(t - crisis.at) > window:
            return []
        crisis.escalated_with_fall = True
        return [
            VitalFinding(
                AlertKind.HYPERTENSIVE_CRISIS,
                Severity.EMERGENCY,
                VitalRule.HYPERTENSIVE_CRISIS_BEFORE_FALL,
                "systolic_crisis_mmhg/diastolic_crisis_mmhg",
                (crisis.record_id,),
                (Escalation.WITH_FALL,),
                _minutes(window),
            )
        ]


def _window(thresholds: StatefulThresholds) -> timedelta:
    return timedelta(minutes=thresholds.crisis_repeat_window_min)


def _minutes(window: timedelta) -> float:
    return window.total_seconds() / 60


def _from_single(finding: Finding, record_id: str) -> VitalFinding:
    return VitalFinding(finding.kind, finding.severity, finding.rule, finding.threshold, (record_id,))


def _follow_stream(resident: _Resident, reading: Reading) -> tuple[_Stream, bool]:
    """The device's current stream, and whether this reading continues it (rather than starting one)."""
    at = reading.measured_at
    stream = resident.streams.get(reading.device.id)
    gap_s = None if stream is None else (at - stream.last_at).total_seconds()
    max_gap_s = CONTINUOUS_SUMMARY_MAX_GAP_S if reading.continuous else CONTINUOUS_MAX_GAP_S
    if stream is not None and gap_s is not None and 0.0 <= gap_s <= max_gap_s:
        stream.last_at = at
        return stream, True
    stream = _Stream(last_at=at)
    resident.streams[reading.device.id] = stream
    return stream, False


def _remeasure(
    resident: _Resident, reading: Reading, record_id: str, thresholds: StatefulThresholds
) -> list[VitalFinding]:
    # Hub receive time, not measurement time: the point is how often the family is asked.
    now = reading.received.monotonic
    asked = resident.remeasure_asked.get(reading.device.id)
    if asked is not None and 0.0 <= now - asked < thresholds.remeasure_quiet_min * 60.0:
        return []
    resident.remeasure_asked[reading.device.id] = now
    return [_from_single(f, record_id) for f in evaluate_reading(reading, thresholds)]


def _refine_glucose_high(
    reading: Reading, record_id: str, findings: list[VitalFinding], thresholds: StatefulThresholds
) -> list[VitalFinding]:
    """Judge the warning-level high against the meal's own threshold and name the meal."""
    glucose = reading.measurement
    if not isinstance(glucose, Glucose):
        return findings
    if any(f.kind is AlertKind.HYPERGLYCAEMIA and f.severity is not Severity.WARNING for f in findings):
        return findings  # urgent and emergency levels hold for every meal context
    kept = [f for f in findings if f.kind is not AlertKind.HYPERGLYCAEMIA]
    meal = _MEAL_HIGH.get(glucose.meal, _ANY_MEAL_HIGH)
    limit: float = getattr(thresholds, meal.threshold)
    if glucose.mmol_l > limit:
        kept.append(
            VitalFinding(AlertKind.HYPERGLYCAEMIA, Severity.WARNING, meal.rule, meal.threshold, (record_id,))
        )
    return kept


def _spo2_low(
    resident: _Resident,
    reading: Reading,
    record_id: str,
    in_stream: bool,
    thresholds: StatefulThresholds,
) -> list[VitalFinding]:
    """Sustained low on a stream, or two low spot checks in a row (each low run alarms once)."""
    measurement = reading.measurement
    if not isinstance(measurement, SpO2):
        return []
    device_id = reading.device.id
    if measurement.spo2 >= thresholds.spo2_low_percent:
        resident.low_spo2_runs.pop(device_id, None)
        resident.last_low_spot_check = None
        return []
    run = resident.low_spo2_runs.get(device_id)
    if run is None or not in_stream:
        run = _LowSpo2Run(started_at=reading.measured_at, first_record_id=record_id)
        resident.low_spo2_runs[device_id] = run
    found: VitalFinding | None = None
    if not in_stream:
        previous, resident.last_low_spot_check = resident.last_low_spot_check, record_id
        if previous is not None:
            found = VitalFinding(
                AlertKind.SPO2_LOW, Severity.URGENT, VitalRule.SPO2_LOW_SPOT_CHECKS, "spo2_low_percent",
                (record_id, previous),
            )
    elif not run.alarmed and (reading.measured_at - run.started_at).total_seconds() >= thresholds.spo2_sustained_s:
        found = VitalFinding(
            AlertKind.SPO2_LOW,
            Severity.URGENT,
            VitalRule.SPO2_LOW_SUSTAINED,
            "spo2_low_percent/spo2_sustained_s",
            (record_id, run.first_record_id),
        )
    if found is None:
        return []
    run.alarmed = True
    return [found]


def _escalate(
    resident: _Resident, at: datetime, finding: VitalFinding, thresholds: StatefulThresholds
) -> VitalFinding:
    if finding.severity is not Severity.URGENT or finding.kind not in ESCALATE_ON_REPEAT:
        return finding
    window = _window(thresholds)
    reasons: list[Escalation] = []
    earlier: list[str] = []
    previous = resident.last_urgent.get(finding.kind)
    if previous is not None and abs(at - previous[0]) <= window:
        reasons.append(Escalation.REPEATED)
        earlier.append(previous[1])
    # Keep the latest by measurement time: a reading from memory must not hide a newer one.
    if previous is None or at >= previous[0]:
        resident.last_urgent[finding.kind] = (at, finding.record_ids[0])
    if finding.kind is AlertKind.HYPERTENSIVE_CRISIS:
        crisis = _Crisis(at, finding.record_ids[0])
        if resident.last_crisis is None or at >= resident.last_crisis.at:
            resident.last_crisis = crisis
        if resident.last_fall is not None and abs(at - resident.last_fall) <= window:
            reasons.append(Escalation.WITH_FALL)
            crisis.escalated_with_fall = True
    if not reasons:
        return finding
    return VitalFinding(
        finding.kind,
        Severity.EMERGENCY,
        finding.rule,
        finding.threshold,
        (*finding.record_ids, *(r for r in earlier if r not in finding.record_ids)),
        tuple(reasons),
        _minutes(window),
    )
