"""Raising alerts and carrying them through their lifecycle.

An alert is a record first: it is committed to the outbox (where it is sent to
the platform before any reading), then published on the home broker for the
family (retained ``alerts/{id}`` while active, every change on ``events/alert``).
When the outbox cannot commit (a full or failing disk) the alert is published and
sent by SMS all the same: the outbox holds the record in memory and writes it
as soon as it can. A storage failure never silences an emergency.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Protocol

from gateway.alerts.model import (
    Alert,
    AlertKind,
    AlertState,
    Evidence,
    Message,
    Severity,
    alert_from_json,
    alert_to_json,
)
from gateway.errors import StoreError
from gateway.store.api import Accepted, NewRecord, Priority
from gateway.store.ids import RecordIdFactory
from gateway.wire import alert_message, alert_record, compact

log = logging.getLogger(__name__)


class OutboxWriter(Protocol):
    async def accept(self, records: Sequence[NewRecord]) -> list[Accepted]: ...
    async def save_active_alert(self, alert_id: str, alert_json: str) -> None: ...
    async def drop_active_alert(self, alert_id: str) -> None: ...
    async def active_alerts(self) -> list[str]: ...


class Publisher(Protocol):
    def publish(self, suffix: str, payload: dict[str, object] | None, *, qos: int = 1,
                retain: bool = False) -> None: ...


ACTIVE_STATES = frozenset({AlertState.RAISED, AlertState.REPEATED, AlertState.ESCALATED,
                           AlertState.ACKNOWLEDGED})


REPEAT_S: dict[Severity, float] = {
    # clinical-thresholds.md, "Alert lifecycle": repeat until acknowledged; warnings are not repeated.
    Severity.EMERGENCY: 120.0,
    Severity.URGENT: 900.0,
}


class AlertService:
    def __init__(self, *, outbox: OutboxWriter, publisher: Publisher, tz: tzinfo,
                 now: Callable[[], datetime], on_stored: Callable[[], None] = lambda: None,
                 clock_synced: Callable[[], bool] = lambda: True,
                 listeners: Sequence[Callable[[Alert], None]] = (),
                 now_monotonic: Callable[[], float] = time.monotonic,
                 repeat_s: dict[Severity, float] | None = None) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._tz = tz
        self._now = now
        self._on_stored = on_stored
        self._clock_synced = clock_synced
        self._listeners = tuple(listeners)
        self._active: dict[str, Alert] = {}
        self._ids = RecordIdFactory()  # alert ids are UUIDv7 like record ids: time-ordered, never reused
        self._now_mono = now_monotonic
        self._repeat_s = REPEAT_S if repeat_s is None else repeat_s
        self._notified_at: dict[str, float] = {}
        """Monotonic time each active alert was last put in front of the family (raise, escalate, repeat)."""

    @property
    def active(self) -> tuple[Alert, ...]:
        return tuple(self._active.values())

    async def raise_alert(self, *, kind: AlertKind, severity: Severity, resident_id: str, message: Message,
                          evidence: Evidence, related_record_ids: Sequence[str] = ()) -> Alert:
        alert = Alert(alert_id=self._ids.new_id(), kind=kind, severity=severity, state=AlertState.RAISED,
                      resident_id=resident_id, raised_at=self._now(), message=message,
                      evidence=evidence, related_record_ids=tuple(related_record_ids))
        await self._record(alert)
        log.warning("alert raised alert_id=%s kind=%s severity=%s resident=%s",
                    alert.alert_id, kind.value, severity.value, resident_id)
        return alert

    async def acknowledge(self, alert_id: str, by: str) -> Alert | None:
        alert = self._active.get(alert_id)
        if alert is None or alert.state is AlertState.ACKNOWLEDGED:
            return alert
        acked = alert.with_state(AlertState.ACKNOWLEDGED, acked_by=by)
        await self._record(acked)
        log.info("alert acknowledged alert_id=%s by=%s", alert_id, by)
        return acked

    async def resolve(self, alert_id: str, *, message: Message | None = None,
                      evidence: Evidence | None = None) -> Alert | None:
        """The condition cleared ("all clear"): tell everyone and clear the retained alert."""
        alert = self._active.get(alert_id)
        if alert is None:
            return None
        resolved = replace(alert, state=AlertState.RESOLVED, message=message or alert.message,
                           evidence={**alert.evidence, **(evidence or {})})
        await self._record(resolved)
        log.info("alert resolved alert_id=%s", alert_id)
        return resolved

    async def escalate(self, alert_id: str, *, severity: Severity, message: Message,
                       evidence: Evidence | None = None) -> Alert | None:
        """Raise an active alert's severity (cancel window over, long lie, repeated crisis)."""
        alert = self._active.get(alert_id)
        if alert is None:
            return None
        escalated = replace(alert, state=AlertState.ESCALATED, severity=severity, message=message,
                            evidence={**alert.evidence, **(evidence or {})})
        await self._record(escalated)
        log.warning("alert escalated alert_id=%s severity=%s", alert_id, severity.value)
        return escalated

    async def restore(self) -> list[Alert]:
        """After a restart: take back the alerts that were still open (acks, repeats, all-clear go on)."""
        restored: list[Alert] = []
        for text in await self._outbox.active_alerts():
            try:
                alert = alert_from_json(text)
            except (ValueError, KeyError, TypeError):
                log.error("an open alert could not be restored (kept in the outbox's active_alerts table)")
                continue
            self._active[alert.alert_id] = alert
            if alert.state is not AlertState.ACKNOWLEDGED:
                self._notified_at[alert.alert_id] = self._now_mono()
            restored.append(alert)
        if restored:
            log.warning("restored %d open alert(s) after a restart", len(restored))
        return restored

    async def repeat_due(self) -> list[Alert]:
        """Repeat every unacknowledged emergency and urgent alert whose interval has passed.

        Each repeat is a lifecycle change (state ``repeated``): stored, published on
        ``events/alert`` and handed to the listeners (SMS), like the first time.
        """
        now = self._now_mono()
        repeated: list[Alert] = []
        for alert in list(self._active.values()):
            interval = self._repeat_s.get(alert.severity)
            if interval is None or alert.state is AlertState.ACKNOWLEDGED:
                continue
            if now - self._notified_at.get(alert.alert_id, now) >= interval:
                again = alert.with_state(AlertState.REPEATED)
                await self._record(again)
                repeated.append(again)
                log.info("alert repeated alert_id=%s severity=%s (not acknowledged)", alert.alert_id,
                         alert.severity.value)
        return repeated

    async def handle_ack(self, topic: str, payload: bytes) -> None:
        """``alerts/{alert_id}/ack`` from a family member's app."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "alerts" or parts[2] != "ack":
            return
        try:
            body = json.loads(payload)
        except ValueError:
            log.warning("ignored malformed ack topic=%s: expected JSON {\"by\": \"contact id\", ...}", topic)
            return
        by = body.get("by") if isinstance(body, dict) else None
        if not isinstance(by, str) or not by:
            log.warning("ignored ack without 'by' topic=%s: say which contact acknowledged", topic)
            return
        if await self.acknowledge(parts[1], by) is None:
            log.info("ack for unknown or resolved alert alert_id=%s", parts[1])

    def republish_active(self) -> None:
        """After a reconnect: make sure the broker holds every active alert."""
        for alert in self._active.values():
            self._publisher.publish(f"alerts/{alert.alert_id}", alert_message(alert, self._tz), retain=True)

    async def _record(self, alert: Alert) -> None:
        # Stored first: the platform copy is the one that cannot be lost if the hub dies now.
        try:
            await self._outbox.accept([NewRecord(type="alert", priority=Priority.ALERT,
                                                 payload_json=compact(alert_record(alert, self._tz,
                                                                                     synced=self._clock_synced())),
                                                 created_at=self._now())])
        except StoreError:
            log.error("alert not on disk yet alert_id=%s state=%s: published and sent all the same; the outbox "
                      "holds it in memory", alert.alert_id, alert.state.value)
        else:
            self._on_stored()
        if alert.state in ACTIVE_STATES:
            await self._outbox.save_active_alert(alert.alert_id, alert_to_json(alert))
            self._active[alert.alert_id] = alert
            if alert.state is not AlertState.ACKNOWLEDGED:
                self._notified_at[alert.alert_id] = self._now_mono()
            retained: dict[str, object] | None = alert_message(alert, self._tz)
        else:
            await self._outbox.drop_active_alert(alert.alert_id)
            self._active.pop(alert.alert_id, None)
            self._notified_at.pop(alert.alert_id, None)
            retained = None  # an empty retained message clears it
        self._publisher.publish(f"alerts/{alert.alert_id}", retained, retain=True)
        self._publisher.publish("events/alert", alert_message(alert, self._tz))
        for listener in self._listeners:  # e.g. SMS: must not block (it queues)
            listener(alert)
