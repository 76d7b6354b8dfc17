"""Escalation tiers: whom an alert must reach now, and when the next tier is due, pure.

A contact is told of an alert about a resident it is linked to and at least as severe as its
``min_severity``. When an alert is raised, the lowest tier with someone to tell is told at once
(a tier with nobody for this alert is not waited for: nobody there could acknowledge). While
nobody acknowledges, the next tier with someone to tell is told ``escalate_after_s`` later (three
times that for an urgent alert; a warning never escalates), and then the next. Those told stay
told: they get the repeats and, with everyone told after them, the all-clear.

A snooze silences the repeats to one contact for a while, never the escalation: a tier-1 contact
who silences an emergency without acknowledging it must not keep tier 2 from hearing of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from gateway.alerts.model import Alert
from gateway.respond.contacts import TIERS, Roster
from gateway.vocabulary import Severity

URGENT_ESCALATION_FACTOR = 3.0
"""An urgent alert (a hypertensive crisis, a fall in its cancel window) gives tier 1 three times as
long as an emergency before the next tier is called: urgent means within the hour, not the minute."""


def escalation_interval_s(severity: Severity, escalate_after_s: float) -> float | None:
    """How long a tier has to acknowledge before the next is told; None: never escalates."""
    if severity is Severity.EMERGENCY:
        return escalate_after_s
    if severity is Severity.URGENT:
        return escalate_after_s * URGENT_ESCALATION_FACTOR
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """Contacts to tell now, and the tier the alert is at once they are told."""

    tier: int
    contacts: tuple[str, ...]


def first_step(alert: Alert, roster: Roster) -> Step | None:
    """At raise: the lowest tier with someone who wants this alert; None when nobody does."""
    for tier in TIERS:
        wanting = roster.wanting(alert.resident_id, alert.severity, tier)
        if wanting:
            return Step(tier, wanting)
    return None


def next_step(alert: Alert, roster: Roster) -> Step | None:
    """The next tier above the alert's with someone not told yet; None when there is none."""
    for tier in TIERS:
        if tier <= alert.tier:
            continue
        untold = tuple(c for c in roster.wanting(alert.resident_id, alert.severity, tier) if c not in alert.told)
        if untold:
            return Step(tier, untold)
    return None


def widened_step(alert: Alert, roster: Roster) -> Step | None:
    """After the alert's severity rose: who of the tiers already reached wants it now and was not told.

    An alert nobody wanted before (a fall in its cancel window, urgent, when every contact wants
    only emergencies) gets its first step.
    """
    if alert.tier == 0:
        return first_step(alert, roster)
    untold = tuple(c for tier in TIERS if tier <= alert.tier
                   for c in roster.wanting(alert.resident_id, alert.severity, tier) if c not in alert.told)
    return Step(alert.tier, untold) if untold else None


def reach(alert: Alert, step: Step, at: datetime) -> Alert:
    """The alert once ``step``'s contacts are told: they join ``told``; a new tier starts its clock."""
    told = alert.told + tuple(c for c in step.contacts if c not in alert.told)
    tier_at = at if step.tier != alert.tier else alert.tier_at
    return replace(alert, tier=step.tier, told=told, tier_at=tier_at)


def awake(told: tuple[str, ...], snoozed_until: Mapping[str, float], now: float) -> tuple[str, ...]:
    """Those told whose snooze (if any) has run out: a repeat is for them."""
    return tuple(c for c in told if snoozed_until.get(c, now) <= now)
