"""Raising alerts and carrying them through their lifecycle.

An alert is a record first: it is committed to the outbox (where it is sent to
the platform before any reading), then published on the home broker for the
family under its resident (retained ``residents/{rid}/alerts/{id}`` while active, every change on
``residents/{rid}/events/alert``) and handed to the listeners (SMS) with the contacts it is for.
Who is told, and when the next tier is, is :mod:`.escalation`'s; acknowledgements and snoozes
come back from the family app (:mod:`gateway.alerts.acks`).
When the outbox cannot commit (a full or failing disk) the alert is published and
sent by SMS all the same: the outbox holds the record in memory and writes it
as soon as it can. A storage failure never silences an emergency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from gateway.alerts.acks import SNOOZE_MAX_MINUTES, ReplyOutcome, judge_reply, payload_is_valid, snooze_minutes
from gateway.alerts.model import Alert, AlertChange, AlertState, Evidence, Message, alert_from_json, alert_to_json
from gateway.errors import StoreError
from gateway.logs import RateLimitedLog, log_id
from gateway.respond.contacts import Roster
from gateway.respond.escalation import awake, escalation_interval_s, first_step, next_step, reach, widened_step
from gateway.store.api import Accepted, NewRecord, Priority
from gateway.store.ids import RecordIdFactory
from gateway.topics import (
    ReplyTopic,
    alert_events_topic,
    alert_summary_topic,
    alert_topic,
    parse_ack_topic,
    parse_snooze_topic,
)
from gateway.vocabulary import AlertKind, Severity
from gateway.wire import alert_event, alert_message, alert_summary, platform_alert

log = logging.getLogger(__name__)


class OutboxWriter(Protocol):
    """Where alerts are stored (:class:`gateway.store.intake.Intake`, which holds them while the disk fails)."""

    async def accept(self, records: Sequence[NewRecord]) -> list[Accepted]: ...
    async def save_active_alert(self, alert_id: str, alert_json: str) -> None: ...
    async def drop_active_alert(self, alert_id: str) -> None: ...


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
ESCALATE_AFTER_S = 300.0
"""``[alerts] escalate_after_s``'s default: five minutes for tier 1 to answer an emergency."""

Listener = Callable[[AlertChange], None]


class AlertService:
    def __init__(self, *, outbox: OutboxWriter, publisher: Publisher, tz: tzinfo,
                 now: Callable[[], datetime], on_stored: Callable[[], None] = lambda: None,
                 clock_synced: Callable[[], bool] = lambda: True,
                 listeners: Sequence[Listener] = (),
                 now_monotonic: Callable[[], float] = time.monotonic,
                 repeat_s: dict[Severity, float] | None = None,
                 roster: Roster | None = None, escalate_after_s: float = ESCALATE_AFTER_S,
                 residents: Sequence[str] = ()) -> None:
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
        self._roster = roster if roster is not None else Roster()
        self._escalate_after_s = escalate_after_s
        self._residents = tuple(residents)
        """The hub's residents: each has a retained alert summary, also with no alert open."""
        # Monotonic times, per active alert: the wall times in the Alert are for a restart and the family.
        self._notified_at: dict[str, float] = {}
        """When each active alert was last put in front of the family (raise, escalate, repeat)."""
        self._tier_since: dict[str, float] = {}
        """When each active alert reached its tier: the next tier is due an interval after."""
        self._snoozed: dict[str, dict[str, float]] = {}
        """Alert id -> contact id -> until when its repeats to that contact are silenced."""
        self._refusals = RateLimitedLog(log, "reply refused", per_window=10, window_s=60.0, clock=time.monotonic)

    @property
    def active(self) -> tuple[Alert, ...]:
        return tuple(self._active.values())

    def reconfigure(self, *, repeat_s: dict[Severity, float], roster: Roster, tz: tzinfo,
                    listeners: Sequence[Listener], escalate_after_s: float, residents: Sequence[str]) -> None:
        """New settings from a reloaded configuration; open alerts, their repeats, tiers and acks carry on.

        Contacts added to a tier an open alert has not reached yet are told when it gets there. A
        resident no longer configured and with no alert open has its summary cleared.
        """
        self._repeat_s = repeat_s
        self._roster = roster
        self._tz = tz
        self._listeners = tuple(listeners)
        self._escalate_after_s = escalate_after_s
        gone = set(self._residents) - set(residents) - {a.resident_id for a in self._active.values()}
        self._residents = tuple(residents)
        for resident in sorted(gone):
            self._publisher.publish(alert_summary_topic(resident), None, retain=True)
        self._publish_summaries()

    async def raise_alert(self, *, kind: AlertKind, severity: Severity, resident_id: str, message: Message,
                          evidence: Evidence, related_record_ids: Sequence[str] = ()) -> Alert:
        alert = Alert(alert_id=self._ids.new_id(), kind=kind, severity=severity, state=AlertState.RAISED,
                      resident_id=resident_id, raised_at=self._now(), message=message,
                      evidence=evidence, related_record_ids=tuple(related_record_ids))
        step = first_step(alert, self._roster)
        if step is not None:
            alert = reach(alert, step, self._now())
        await self._record(alert, notify=alert.told)
        log.warning("alert raised alert_id=%s kind=%s severity=%s resident=%s tier=%d told=%s",
                    alert.alert_id, kind.value, severity.value, resident_id, alert.tier, ",".join(alert.told) or "-")
        return alert

    async def acknowledge(self, alert_id: str, by: str) -> Alert | None:
        """Someone is on it: no more repeats, no next tier."""
        alert = self._active.get(alert_id)
        if alert is None or alert.state is AlertState.ACKNOWLEDGED:
            return alert
        acked = alert.with_state(AlertState.ACKNOWLEDGED, acked_by=by)
        await self._record(acked, notify=())
        log.info("alert acknowledged alert_id=%s by=%s", alert_id, by)
        return acked

    async def resolve(self, alert_id: str, *, message: Message | None = None,
                      evidence: Evidence | None = None) -> Alert | None:
        """The condition cleared ("all clear"): tell everyone who was told and clear the retained alert."""
        alert = self._active.get(alert_id)
        if alert is None:
            return None
        resolved = replace(alert, state=AlertState.RESOLVED, message=message or alert.message,
                           evidence={**alert.evidence, **(evidence or {})})
        await self._record(resolved, notify=resolved.told)
        log.info("alert resolved alert_id=%s told=%s", alert_id, ",".join(resolved.told) or "-")
        return resolved

    async def escalate(self, alert_id: str, *, severity: Severity, message: Message,
                       evidence: Evidence | None = None) -> Alert | None:
        """Raise an active alert's severity (cancel window over, long lie, repeated crisis).

        Everyone told hears it again; contacts of the tiers reached who want only the new severity
        are told now. The next tier's clock runs on from when the tier was reached.
        """
        alert = self._active.get(alert_id)
        if alert is None:
            return None
        escalated = replace(alert, state=AlertState.ESCALATED, severity=severity, message=message,
                            evidence={**alert.evidence, **(evidence or {})})
        step = widened_step(escalated, self._roster)
        if step is not None:
            escalated = reach(escalated, step, self._now())
        await self._record(escalated, notify=escalated.told)
        log.warning("alert escalated alert_id=%s severity=%s tier=%d", alert_id, severity.value, escalated.tier)
        return escalated

    async def follow_up(self) -> None:
        """The periodic job: next tiers first (a repeat must not push a tier back), then repeats."""
        await self.escalations_due()
        await self.repeat_due()

    async def escalations_due(self) -> list[Alert]:
        """Tell the next tier of every unacknowledged alert whose tier had its time (:mod:`.escalation`)."""
        now = self._now_mono()
        escalated: list[Alert] = []
        for alert in list(self._active.values()):
            interval = escalation_interval_s(alert.severity, self._escalate_after_s)
            if interval is None or alert.state is AlertState.ACKNOWLEDGED:
                continue
            if now - self._tier_since.get(alert.alert_id, now) < interval:
                continue
            step = next_step(alert, self._roster)
            if step is None:
                continue  # the last tier is told: repeats go on
            up = reach(alert.with_state(AlertState.ESCALATED), step, self._now())
            await self._record(up, notify=step.contacts)
            escalated.append(up)
            log.warning("alert escalated to tier %d alert_id=%s told=%s (not acknowledged)", step.tier,
                        alert.alert_id, ",".join(step.contacts))
        return escalated

    async def repeat_due(self) -> list[Alert]:
        """Repeat every unacknowledged emergency and urgent alert whose interval has passed.

        Each repeat is a lifecycle change (state ``repeated``): stored, published on the
        resident's ``events/alert`` and handed to the listeners, for those told who did not snooze
        it. When every one of them did, there is no repeat until the first snooze runs out.
        """
        now = self._now_mono()
        repeated: list[Alert] = []
        for alert in list(self._active.values()):
            interval = self._repeat_s.get(alert.severity)
            if interval is None or alert.state is AlertState.ACKNOWLEDGED:
                continue
            if now - self._notified_at.get(alert.alert_id, now) < interval:
                continue
            notify = awake(alert.told, self._snoozed.get(alert.alert_id, {}), now)
            if alert.told and not notify:
                continue
            again = alert.with_state(AlertState.REPEATED)
            await self._record(again, notify=notify)
            repeated.append(again)
            log.info("alert repeated alert_id=%s severity=%s (not acknowledged)", alert.alert_id,
                     alert.severity.value)
        return repeated

    async def snooze(self, alert_id: str, contact_id: str, minutes: int) -> Alert | None:
        """Silence this alert's repeats to one contact for ``minutes``; it stays unacknowledged and escalates.

        Not a lifecycle change: kept across a restart and shown on the retained alert, not an event.
        """
        alert = self._active.get(alert_id)
        if alert is None or alert.state is AlertState.ACKNOWLEDGED:
            return alert
        now = self._now()
        kept = {c: until for c, until in alert.snoozed_until.items() if until > now and c != contact_id}
        snoozed = replace(alert, snoozed_until={**kept, contact_id: now + timedelta(minutes=minutes)})
        self._snoozed.setdefault(alert_id, {})[contact_id] = self._now_mono() + minutes * 60.0
        self._active[alert_id] = snoozed
        await self._outbox.save_active_alert(alert_id, alert_to_json(snoozed))
        self._publisher.publish(alert_topic(snoozed.resident_id, alert_id), alert_message(snoozed, self._tz),
                                retain=True)
        log.info("alert snoozed alert_id=%s by=%s minutes=%d", alert_id, contact_id, minutes)
        return snoozed

    def restore(self, stored: Sequence[str]) -> list[Alert]:
        """After a restart: take back the alerts that were still open (acks, repeats, tiers, all-clear go on).

        ``stored``: their JSON as the outbox kept it (:func:`gateway.store.active_alerts.all_open`).

        The time a tier has had and the snoozes' time left are taken from the wall clock: the
        escalation resumes where it was, less any time the clock says went by (never less than zero).
        """
        restored: list[Alert] = []
        now, now_mono = self._now(), self._now_mono()
        for text in stored:
            try:
                alert = alert_from_json(text)
            except (ValueError, KeyError, TypeError):
                log.error("an open alert could not be restored (kept in the outbox's active_alerts table)")
                continue
            self._active[alert.alert_id] = alert
            if alert.state is not AlertState.ACKNOWLEDGED:
                self._notified_at[alert.alert_id] = now_mono
            had = max(0.0, (now - alert.tier_at).total_seconds()) if alert.tier_at else 0.0
            self._tier_since[alert.alert_id] = now_mono - had
            self._snoozed[alert.alert_id] = {
                contact: now_mono + min(max(0.0, (until - now).total_seconds()), SNOOZE_MAX_MINUTES * 60.0)
                for contact, until in alert.snoozed_until.items()}
            restored.append(alert)
        if restored:
            log.warning("restored %d open alert(s) after a restart", len(restored))
        return restored

    async def handle_ack(self, topic: str, payload: bytes | None, *, retained: bool = False) -> ReplyOutcome:
        """``residents/{rid}/alerts/{aid}/ack/{contact_id}`` from a family member's app.

        Who acknowledged is the topic's contact id (the broker lets each account write only its own);
        anything the payload says about it is ignored. Acks are never retained: one that was is
        cleared once handled, or every reconnect would bring it back. ``payload`` None: it was too
        big to be taken in (refused, and cleared when retained).
        """
        ack = parse_ack_topic(topic)
        if ack is None or payload is None or not payload_is_valid(payload):
            outcome = ReplyOutcome.MALFORMED
        else:
            outcome = judge_reply(ack, self._active.get(ack.alert_id), self._roster) or ReplyOutcome.ACKNOWLEDGED
            if outcome is ReplyOutcome.ACKNOWLEDGED:
                await self.acknowledge(ack.alert_id, ack.contact_id)
        self._settle_reply("ack", topic, ack, outcome, retained=retained)
        return outcome

    async def handle_snooze(self, topic: str, payload: bytes | None, *, retained: bool = False) -> ReplyOutcome:
        """``residents/{rid}/alerts/{aid}/snooze/{contact_id}`` with ``{"minutes": N}``, like an ack otherwise."""
        request = parse_snooze_topic(topic)
        minutes = snooze_minutes(payload) if payload is not None else None
        if request is None or minutes is None:
            outcome = ReplyOutcome.MALFORMED
        else:
            outcome = judge_reply(request, self._active.get(request.alert_id), self._roster) or ReplyOutcome.SNOOZED
            if outcome is ReplyOutcome.SNOOZED:
                await self.snooze(request.alert_id, request.contact_id, minutes)
        self._settle_reply("snooze", topic, request, outcome, retained=retained)
        return outcome

    def _settle_reply(self, what: str, topic: str, reply: ReplyTopic | None, outcome: ReplyOutcome, *,
                      retained: bool) -> None:
        if retained:
            self._publisher.publish(topic, None, retain=True)
        if not outcome.accepted:
            # Ids only, and only what looks like one: the levels are the sender's choice; the payload is never logged.
            ids = (reply.resident_id, reply.alert_id, reply.contact_id) if reply else ("-", "-", "-")
            self._refusals.log(logging.WARNING, "%s refused reason=%s resident=%s alert_id=%s contact=%s",
                               what, outcome.value, *(log_id(i) for i in ids))

    def republish_active(self) -> None:
        """After a reconnect: make sure the broker holds every active alert, and each resident's summary."""
        for alert in self._active.values():
            self._publisher.publish(alert_topic(alert.resident_id, alert.alert_id), alert_message(alert, self._tz),
                                    retain=True)
        self._publish_summaries()

    def _publish_summaries(self) -> None:
        residents = dict.fromkeys([*self._residents, *(a.resident_id for a in self._active.values())])
        for resident in residents:
            self._publish_summary(resident)

    def _publish_summary(self, resident_id: str) -> None:
        self._publisher.publish(alert_summary_topic(resident_id),
                                alert_summary(resident_id, tuple(self._active.values())), retain=True)

    async def _record(self, alert: Alert, *, notify: tuple[str, ...]) -> None:
        # Stored first: the platform copy is the one that cannot be lost if the hub dies now.
        try:
            await self._outbox.accept([NewRecord(type="alert", priority=Priority.ALERT,
                                                 payload_json=platform_alert(alert, self._tz,
                                                                              synced=self._clock_synced()).to_json(),
                                                 created_at=self._now())])
        except StoreError:
            log.error("alert not on disk yet alert_id=%s state=%s: published and sent all the same; the outbox "
                      "holds it in memory", alert.alert_id, alert.state.value)
        else:
            self._on_stored()
        aid = alert.alert_id
        if alert.state in ACTIVE_STATES:
            await self._outbox.save_active_alert(aid, alert_to_json(alert))
            previous = self._active.get(aid)
            if previous is None or previous.tier != alert.tier:
                self._tier_since[aid] = self._now_mono()
            self._active[aid] = alert
            if alert.state is not AlertState.ACKNOWLEDGED:
                self._notified_at[aid] = self._now_mono()
            retained: dict[str, object] | None = alert_message(alert, self._tz)
        else:
            await self._outbox.drop_active_alert(aid)
            for table in (self._active, self._notified_at, self._tier_since, self._snoozed):
                table.pop(aid, None)
            retained = None  # an empty retained message clears it
        change = AlertChange(alert, notify)
        self._publisher.publish(alert_topic(alert.resident_id, aid), retained, retain=True)
        self._publisher.publish(alert_events_topic(alert.resident_id), alert_event(change, self._tz))
        self._publish_summary(alert.resident_id)
        for listener in self._listeners:  # e.g. SMS: must not block (it queues)
            listener(change)
