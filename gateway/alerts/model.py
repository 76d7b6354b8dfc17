"""The Alert record and its vocabulary (see clinical-thresholds.md)."""

from __future__ import annotations

import json
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


def alert_to_json(alert: Alert) -> str:
    """The alert as the hub keeps it across a restart (not a wire format)."""
    return json.dumps({
        "alert_id": alert.alert_id, "kind": alert.kind.value, "severity": alert.severity.value,
        "state": alert.state.value, "resident_id": alert.resident_id, "raised_at": alert.raised_at.isoformat(),
        "message": {"zh": alert.message.zh, "en": alert.message.en}, "evidence": alert.evidence,
        "related_record_ids": list(alert.related_record_ids), "acked_by": alert.acked_by,
    }, ensure_ascii=False, separators=(",", ":"))


def alert_from_json(text: str) -> Alert:
    """Inverse of :func:`alert_to_json`; raises ValueError (or KeyError) on anything else."""
    data = json.loads(text)
    raised_at = datetime.fromisoformat(data["raised_at"])
    if raised_at.tzinfo is None:
        raise ValueError("raised_at has no UTC offset")
    return Alert(
        alert_id=str(data["alert_id"]), kind=AlertKind(data["kind"]), severity=Severity(data["severity"]),
        state=AlertState(data["state"]), resident_id=str(data["resident_id"]), raised_at=raised_at,
        message=Message(str(data["message"]["zh"]), str(data["message"]["en"])), evidence=dict(data["evidence"]),
        related_record_ids=tuple(str(r) for r in data["related_record_ids"]),
        acked_by=None if data["acked_by"] is None else str(data["acked_by"]),
    )
