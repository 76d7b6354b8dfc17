"""Raising alerts and carrying them through their lifecycle.

An alert is a record first: it is committed to the outbox (where it is sent to
the platform before any reading), then published on the home broker for the
family under its resident (retained ``residents/{rid}/alerts/{id}`` while active, every change on
``residents/{rid}/events/alert``). Acknowledgements come back from the family app (:mod:`.acks`).
When the outbox cannot commit (a full or failing disk) the alert is published and
sent by SMS all the same: the outbox holds the record in memory and writes it
as soon as it can. A storage failure never silences an emergency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Protocol

from gateway.alerts.acks import AckOutcome, judge_ack, payload_is_valid
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
from gateway.family import FamilyLinks
from gateway.logs import RateLimitedLog, log_id
from gateway.store.api import Accepted, NewRecord, Priority
from gateway.store.ids import RecordIdFactory
from gateway.topics import alert_events_topic, alert_topic, parse_ack_topic
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
                 repeat_s: dict[Severity, float] | None = None,
                 family: FamilyLinks | None = None) -> None:
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
        self._family = family if family is not None else FamilyLinks({})
        self._refusals = RateLimitedLog(log, "ack refused", per_window=10, window_s=60.0, clock=time.monotonic)

    @property
    def active(self) -> tuple[Alert, ...]:
        return tuple(self._active.values())

    def reconfigure(self, *, repeat_s: dict[Severity, float], family: FamilyLinks, tz: tzinfo,
                    listeners: Sequence[Callable[[Alert], None]]) -> None:
        """New settings from a reloaded configuration; open alerts, their repeats and acks carry on."""
        self._repeat_s = repeat_s
        self._family = family
        self._tz = tz
        self._listeners = tuple(listeners)

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

        Each repeat is a lifecycle change (state ``repeated``): stored, published on the
        resident's ``events/alert`` and handed to the listeners (SMS), like the first time.
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

    async def handle_ack(self, topic: str, payload: bytes | None, *, retained: bool = False) -> AckOutcome:
        """``residents/{rid}/alerts/{aid}/ack/{contact_id}`` from a family member's app.

        Who acknowledged is the topic's contact id (the broker lets each account write only its own);
        anything the payload says about it is ignored. Acks are never retained: one that was is
        cleared once handled, or every reconnect would bring it back. ``payload`` None: it was too
        big to be taken in (refused, and cleared when retained).
        """
        ack = parse_ack_topic(topic)
        if ack is None or payload is None or not payload_is_valid(payload):
            outcome = AckOutcome.MALFORMED
        else:
            outcome = judge_ack(ack, self._active.get(ack.alert_id), self._family)
            if outcome is AckOutcome.ACKNOWLEDGED:
                await self.acknowledge(ack.alert_id, ack.contact_id)
        if retained:
            self._publisher.publish(topic, None, retain=True)
        if not outcome.accepted:
            # Ids only, and only what looks like one: the levels are the sender's choice; the payload is never logged.
            ids = (ack.resident_id, ack.alert_id, ack.contact_id) if ack else ("-", "-", "-")
            self._refusals.log(logging.WARNING, "ack refused reason=%s resident=%s alert_id=%s contact=%s",
                               outcome.value, *(log_id(i) for i in ids))
        return outcome

    def republish_active(self) -> None:
        """After a reconnect: make sure the broker holds every active alert."""
        for alert in self._active.values():
            self._publisher.publish(alert_topic(alert.resident_id, alert.alert_id), alert_message(alert, self._tz),
                                    retain=True)

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
        self._publisher.publish(alert_topic(alert.resident_id, alert.alert_id), retained, retain=True)
        self._publisher.publish(alert_events_topic(alert.resident_id), alert_message(alert, self._tz))
        for listener in self._listeners:  # e.g. SMS: must not block (it queues)
            listener(alert)
