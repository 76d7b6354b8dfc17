"""The Alert record, its lifecycle states and its messages (the shared words are :mod:`gateway.vocabulary`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from gateway.vocabulary import AlertKind, Severity


class AlertState(StrEnum):
    RAISED = "raised"
    REPEATED = "repeated"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


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
    tier: int = 0
    """The highest escalation tier told so far (1-3); 0 while there was nobody to tell."""
    told: tuple[str, ...] = ()
    """The contact ids told so far, in the order they were: each one gets the all-clear."""
    tier_at: datetime | None = None
    """When ``tier`` was reached: a restart resumes the escalation from it."""
    snoozed_until: Mapping[str, datetime] = field(default_factory=dict)
    """Contacts who silenced this alert's repeats (not its escalation), until when."""

    def with_state(self, state: AlertState, *, acked_by: str | None = None) -> Alert:
        return replace(self, state=state, acked_by=acked_by if acked_by is not None else self.acked_by)


@dataclass(frozen=True)
class AlertChange:
    """One lifecycle change of an alert, and the contacts it is for (whom it must reach now).

    Raised: the first tier; the next tier: its contacts only; a repeat: those told who did not
    snooze it; a new severity: everyone told; acknowledged: nobody; the all-clear: everyone told.
    """

    alert: Alert
    notify: tuple[str, ...] = ()


def alert_to_json(alert: Alert) -> str:
    """The alert as the hub keeps it across a restart (not a wire format)."""
    return json.dumps({
        "alert_id": alert.alert_id, "kind": alert.kind.value, "severity": alert.severity.value,
        "state": alert.state.value, "resident_id": alert.resident_id, "raised_at": alert.raised_at.isoformat(),
        "message": {"zh": alert.message.zh, "en": alert.message.en}, "evidence": alert.evidence,
        "related_record_ids": list(alert.related_record_ids), "acked_by": alert.acked_by,
        "tier": alert.tier, "told": list(alert.told),
        "tier_at": alert.tier_at.isoformat() if alert.tier_at else None,
        "snoozed_until": {contact: until.isoformat() for contact, until in alert.snoozed_until.items()},
    }, ensure_ascii=False, separators=(",", ":"))


def alert_from_json(text: str) -> Alert:
    """Inverse of :func:`alert_to_json`; raises ValueError (or KeyError) on anything else.

    Alerts kept by a version without escalation tiers (no ``tier``, ``told``...) come back as told
    to nobody yet: the escalation starts again from the first tier.
    """
    data = json.loads(text)
    tier_at = data.get("tier_at")
    return Alert(
        alert_id=str(data["alert_id"]), kind=AlertKind(data["kind"]), severity=Severity(data["severity"]),
        state=AlertState(data["state"]), resident_id=str(data["resident_id"]), raised_at=_aware(data["raised_at"]),
        message=Message(str(data["message"]["zh"]), str(data["message"]["en"])), evidence=dict(data["evidence"]),
        related_record_ids=tuple(str(r) for r in data["related_record_ids"]),
        acked_by=None if data["acked_by"] is None else str(data["acked_by"]),
        tier=int(data.get("tier", 0)), told=tuple(str(c) for c in data.get("told", ())),
        tier_at=_aware(tier_at) if tier_at is not None else None,
        snoozed_until={str(c): _aware(until) for c, until in dict(data.get("snoozed_until", {})).items()},
    )


def _aware(text: object) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment
