"""The Alert record and its vocabulary (see clinical-thresholds.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    EMERGENCY = "emergency"   # act now: call, escalate until someone acknowledges
    URGENT = "urgent"         # tell family promptly, repeat until acknowledged
    WARNING = "warning"       # tell family; no repeat; daily summary


class AlertState(StrEnum):
    RAISED = "raised"
    REPEATED = "repeated"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertKind(StrEnum):
    HYPOGLYCAEMIA = "hypoglycaemia"
    HYPERGLYCAEMIA = "hyperglycaemia"
    HYPERTENSIVE_CRISIS = "hypertensive_crisis"
    HYPERTENSION_GRADE3 = "hypertension_grade3"
    HYPOTENSION = "hypotension"
    PULSE_OUT_OF_RANGE = "pulse_out_of_range"
    SPO2_LOW = "spo2_low"
    FEVER = "fever"
    HYPOTHERMIA = "hypothermia"
    REMEASURE = "remeasure"
    FALL = "fall"
    HELP_REQUEST = "help_request"
    DEVICE_SILENT = "device_silent"
    MEASUREMENT_MISSED = "measurement_missed"
    TEST = "test"


Evidence = dict[str, str | int | float | list[str]]


@dataclass(frozen=True)
class Message:
    zh: str
    en: str


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: AlertKind
    severity: Severity
    state: AlertState
    resident_id: str
    raised_at: datetime
    message: Message
    evidence: Evidence = field(default_factory=dict)
    """What caused it: record ids, the values and thresholds crossed. Goes to the family and
    the platform; never into logs."""
    related_record_ids: tuple[str, ...] = ()
    acked_by: str | None = None

    def with_state(self, state: AlertState, *, acked_by: str | None = None) -> Alert:
        return replace(self, state=state, acked_by=acked_by if acked_by is not None else self.acked_by)
