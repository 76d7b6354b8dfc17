"""Escalation tiers on a clock the test moves: who is told, when the next tier is, what stops it.

The alert service runs with a real SQLite outbox and a publisher that records what the family's
apps would see; a listener records each change and whom it was for (what the SMS notifier gets).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from daemon_outbox import DaemonOutbox

from gateway.alerts.acks import ReplyOutcome
from gateway.alerts.model import Alert, AlertChange, AlertState, Message
from gateway.respond.contacts import Contact, Roster
from gateway.respond.escalation import Step, escalation_interval_s, first_step, next_step, widened_step
from gateway.respond.service import AlertService
from gateway.store import active_alerts
from gateway.topics import ack_topic, snooze_topic
from gateway.vocabulary import AlertKind, Severity

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
ESCALATE_S = 300.0
# Mother (r-0001): her daughter first, then her son, then the neighbour. The son also cares for
# his father (r-0002); the neighbour wants emergencies only; the grandson sees warnings in his app.
ROSTER = Roster.of([
    Contact("c-daughter", frozenset({"r-0001"}), tier=1, app=True, phone="+8613800138000"),
    Contact("c-son", frozenset({"r-0001", "r-0002"}), tier=2, app=True),
    Contact("c-neighbour", frozenset({"r-0001"}), tier=3, min_severity=Severity.EMERGENCY, phone="+8613900139000"),
    Contact("c-grandson", frozenset({"r-0001"}), tier=1, app=True, min_severity=Severity.WARNING),
])


class Clock:
    """Monotonic and wall time moved together by the test."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def mono(self) -> float:
        return self.elapsed

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.elapsed)


@dataclass
class Family:
    """What the family's apps see (published) and what each change was for (the SMS notifier's input)."""

    published: list[tuple[str, dict[str, Any] | None, bool]] = field(default_factory=list)
    changes: list[AlertChange] = field(default_factory=list)

    def publish(self, suffix: str, payload: dict[str, Any] | None, *, qos: int = 1, retain: bool = False) -> None:
        self.published.append((suffix, payload, retain))

    def events(self) -> list[dict[str, Any]]:
        return [p for s, p, _ in self.published if s.endswith("/events/alert") and p is not None]

    def told(self) -> list[tuple[str, tuple[str, ...]]]:
        """(state, notify) of every change so far."""
        return [(c.alert.state.value, c.notify) for c in self.changes]


@dataclass
class Hub:
    service: AlertService
    family: Family
    clock: Clock
    outbox: DaemonOutbox

    async def at(self, seconds: float) -> tuple[list[Alert], list[Alert]]:
        """Move the clock and run the periodic job: (escalated, repeated)."""
        self.clock.elapsed = seconds
        return await self.service.escalations_due(), await self.service.repeat_due()

    def alert(self, alert_id: str) -> Alert:
        return next(a for a in self.service.active if a.alert_id == alert_id)


def make_service(outbox: DaemonOutbox, family: Family, clock: Clock) -> AlertService:
    return AlertService(outbox=outbox.intake, publisher=family, tz=TZ, now=clock.wall, now_monotonic=clock.mono,
                        listeners=[family.changes.append], roster=ROSTER, escalate_after_s=ESCALATE_S)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    family, clock = Family(), Clock()
    yield Hub(make_service(outbox, family, clock), family, clock, outbox)
    await outbox.close()


async def raise_fall(service: AlertService, severity: Severity = Severity.EMERGENCY,
                     resident: str = "r-0001") -> Alert:
    return await service.raise_alert(kind=AlertKind.HELP_REQUEST, severity=severity, resident_id=resident,
                                     message=Message("求助", "help"), evidence={})


# -- the pure rules ------------------------------------------------------------------------------


def test_an_urgent_alert_gives_each_tier_three_times_as_long_and_a_warning_never_escalates() -> None:
    assert escalation_interval_s(Severity.EMERGENCY, 300) == 300
    assert escalation_interval_s(Severity.URGENT, 300) == 900
    assert escalation_interval_s(Severity.WARNING, 300) is None


def alert_of(resident: str, severity: Severity, tier: int = 0, told: tuple[str, ...] = ()) -> Alert:
    return Alert(alert_id="a-1", kind=AlertKind.FALL, severity=severity, state=AlertState.RAISED,
                 resident_id=resident, raised_at=T0, message=Message("", ""), tier=tier, told=told)


def test_the_first_tier_with_someone_for_the_alert_is_told_and_empty_tiers_are_skipped() -> None:
    assert first_step(alert_of("r-0001", Severity.WARNING), ROSTER) == Step(1, ("c-grandson",))
    assert first_step(alert_of("r-0001", Severity.URGENT), ROSTER) == Step(1, ("c-daughter", "c-grandson"))
    assert first_step(alert_of("r-0002", Severity.URGENT), ROSTER) == Step(2, ("c-son",))  # nobody on tier 1
    assert first_step(alert_of("r-0009", Severity.EMERGENCY), ROSTER) is None
    urgent_at_2 = alert_of("r-0001", Severity.URGENT, 2, ("c-daughter", "c-grandson", "c-son"))
    assert next_step(urgent_at_2, ROSTER) is None  # the neighbour wants emergencies only
    assert next_step(alert_of("r-0001", Severity.EMERGENCY, 2, urgent_at_2.told), ROSTER) == Step(3, ("c-neighbour",))


def test_a_higher_severity_reaches_those_of_the_tiers_reached_who_now_want_it() -> None:
    fall = alert_of("r-0001", Severity.URGENT, 3, ("c-daughter", "c-grandson", "c-son"))
    assert widened_step(fall, ROSTER) is None
    assert widened_step(alert_of("r-0001", Severity.EMERGENCY, 3, fall.told), ROSTER) == Step(3, ("c-neighbour",))
    nobody_yet = Roster.of([Contact("c-x", tier=2, min_severity=Severity.EMERGENCY, phone="+8613800138000")])
    assert widened_step(alert_of("r-0001", Severity.EMERGENCY), nobody_yet) == Step(2, ("c-x",))


# -- the service on a moving clock ----------------------------------------------------------------


async def test_tier_2_at_escalate_after_s_tier_3_after_it_and_the_all_clear_to_everyone_told(hub: Hub) -> None:
    help_call = await raise_fall(hub.service)
    assert hub.family.told() == [("raised", ("c-daughter", "c-grandson"))]

    assert (await hub.at(ESCALATE_S - 0.1))[0] == []  # no tier 2 yet (the 120 s repeats aside)
    hub.family.changes.clear()
    escalated, _ = await hub.at(ESCALATE_S)
    assert [(a.tier, a.told) for a in escalated] == [(2, ("c-daughter", "c-grandson", "c-son"))]
    assert hub.family.told() == [("escalated", ("c-son",))]
    event = hub.family.events()[-1]
    assert (event["state"], event["tier"], event["told"], event["notify"]) == (
        "escalated", 2, ["c-daughter", "c-grandson", "c-son"], ["c-son"])

    hub.family.changes.clear()
    assert (await hub.at(2 * ESCALATE_S - 0.1))[0] == []  # counted from tier 2, not from the raise
    escalated, _ = await hub.at(2 * ESCALATE_S)
    assert [a.tier for a in escalated] == [3]
    assert hub.family.told()[-1] == ("escalated", ("c-neighbour",))
    assert (await hub.at(10 * ESCALATE_S))[0] == []  # the last tier was told; repeats go on

    hub.family.changes.clear()
    await hub.service.resolve(help_call.alert_id)
    assert hub.family.told() == [("resolved", ("c-daughter", "c-grandson", "c-son", "c-neighbour"))]


async def test_an_ack_by_any_contact_stops_repeats_and_escalation(hub: Hub) -> None:
    help_call = await raise_fall(hub.service)
    await hub.at(ESCALATE_S)  # the son is told ...
    assert await hub.service.handle_ack(ack_topic("r-0001", help_call.alert_id, "c-son"), b"") \
        is ReplyOutcome.ACKNOWLEDGED  # ... and is on his way
    hub.family.changes.clear()
    for seconds in (ESCALATE_S * 2, ESCALATE_S * 3, ESCALATE_S * 10):
        assert await hub.at(seconds) == ([], [])
    assert hub.family.changes == []
    await hub.service.resolve(help_call.alert_id)
    assert hub.family.told() == [("resolved", ("c-daughter", "c-grandson", "c-son"))]  # not the neighbour


async def test_an_ack_from_an_unknown_contact_is_refused_and_logged(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    help_call = await raise_fall(hub.service)
    outcome = await hub.service.handle_ack(ack_topic("r-0001", help_call.alert_id, "c-stranger"), b"")
    assert outcome is ReplyOutcome.UNKNOWN_CONTACT
    assert "ack refused reason=unknown_contact resident=r-0001" in caplog.text
    assert hub.alert(help_call.alert_id).state is AlertState.RAISED
    escalated, _ = await hub.at(ESCALATE_S)
    assert [a.tier for a in escalated] == [2]  # the escalation goes on


async def test_an_urgent_alert_escalates_after_three_times_as_long(hub: Hub) -> None:
    await raise_fall(hub.service, Severity.URGENT)
    assert (await hub.at(3 * ESCALATE_S - 1))[0] == []
    assert [a.tier for a in (await hub.at(3 * ESCALATE_S))[0]] == [2]
    assert (await hub.at(6 * ESCALATE_S))[0] == []  # the neighbour wants emergencies only


async def test_a_higher_severity_tells_everyone_told_again_and_the_new_ones(hub: Hub) -> None:
    fall = await raise_fall(hub.service, Severity.URGENT)
    await hub.at(3 * ESCALATE_S)  # tier 2: the son
    hub.family.changes.clear()
    await hub.service.escalate(fall.alert_id, severity=Severity.EMERGENCY, message=Message("长卧", "long lie"))
    assert hub.family.told() == [("escalated", ("c-daughter", "c-grandson", "c-son"))]
    escalated, _ = await hub.at(4 * ESCALATE_S)  # an emergency's interval since tier 2 was reached
    assert [(a.tier, a.told[-1]) for a in escalated] == [(3, "c-neighbour")]


async def test_a_snooze_silences_one_contacts_repeats_for_its_minutes_but_not_the_escalation(hub: Hub) -> None:
    help_call = await raise_fall(hub.service)
    topic = snooze_topic("r-0001", help_call.alert_id, "c-daughter")
    assert await hub.service.handle_snooze(topic, b'{"minutes": 9}') is ReplyOutcome.SNOOZED
    assert hub.alert(help_call.alert_id).snoozed_until == {"c-daughter": T0 + timedelta(minutes=9)}
    retained = [p for s, p, r in hub.family.published if s.endswith(help_call.alert_id) and r][-1]
    assert retained is not None and retained["snoozed_until"] == {"c-daughter": "2026-11-23T08:09:00.000+08:00"}

    hub.family.changes.clear()
    await hub.at(120)  # the emergency repeat: for the grandson only
    await hub.at(ESCALATE_S)  # and the son is told all the same
    assert hub.family.told() == [("repeated", ("c-grandson",)), ("escalated", ("c-son",))]
    hub.family.changes.clear()
    await hub.at(ESCALATE_S + 120)
    assert hub.family.told() == [("repeated", ("c-grandson", "c-son"))]
    hub.family.changes.clear()
    await hub.at(540)  # nine minutes: her snooze ran out
    assert hub.family.told() == [("repeated", ("c-daughter", "c-grandson", "c-son"))]
    assert hub.alert(help_call.alert_id).state is AlertState.REPEATED  # a snooze acknowledges nothing


async def test_when_everyone_told_snoozed_there_is_no_repeat_until_the_first_snooze_ends(hub: Hub) -> None:
    help_call = await raise_fall(hub.service, resident="r-0002")  # the son alone, on tier 2
    await hub.service.handle_snooze(snooze_topic("r-0002", help_call.alert_id, "c-son"), b'{"minutes": 5}')
    hub.family.changes.clear()
    assert await hub.at(299) == ([], [])
    assert [a.state for a in (await hub.at(300))[1]] == [AlertState.REPEATED]


@pytest.mark.parametrize(
    ("payload", "contact", "outcome"),
    [
        (b'{"minutes": 0}', "c-daughter", ReplyOutcome.MALFORMED),
        (b'{"minutes": 121}', "c-daughter", ReplyOutcome.MALFORMED),
        (b'{"minutes": 1.5}', "c-daughter", ReplyOutcome.MALFORMED),
        (b'{"minutes": true}', "c-daughter", ReplyOutcome.MALFORMED),
        (b"", "c-daughter", ReplyOutcome.MALFORMED),
        (b'{"minutes": "10"}', "c-daughter", ReplyOutcome.MALFORMED),
        (b'{"minutes": 10}', "c-stranger", ReplyOutcome.UNKNOWN_CONTACT),
        (b'{"minutes": 10}', "c-neighbour", ReplyOutcome.NOT_LINKED),  # SMS only: no app to snooze from
        (b'{"minutes": 120}', "c-daughter", ReplyOutcome.SNOOZED),
    ],
)
async def test_a_snooze_is_bounded_and_only_from_a_linked_app_contact(
        hub: Hub, payload: bytes, contact: str, outcome: ReplyOutcome) -> None:
    help_call = await raise_fall(hub.service)
    assert await hub.service.handle_snooze(snooze_topic("r-0001", help_call.alert_id, contact), payload) is outcome
    assert bool(hub.alert(help_call.alert_id).snoozed_until) is (outcome is ReplyOutcome.SNOOZED)


async def test_a_restart_resumes_the_tier_reached_who_was_told_and_the_snoozes(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = await DaemonOutbox.open(path)
    family, clock = Family(), Clock()
    first = make_service(outbox, family, clock)
    help_call = await raise_fall(first)
    clock.elapsed = ESCALATE_S
    await first.escalations_due()  # tier 2
    await first.handle_snooze(snooze_topic("r-0001", help_call.alert_id, "c-son"), b'{"minutes": 30}')
    await outbox.close()

    clock.elapsed = ESCALATE_S + 200  # down for 200 s; the monotonic clock starts again from 0
    restarted_mono = Clock()
    outbox = await DaemonOutbox.open(path)
    family = Family()
    second = AlertService(outbox=outbox.intake, publisher=family, tz=TZ, now=clock.wall,
                          now_monotonic=restarted_mono.mono, listeners=[family.changes.append], roster=ROSTER,
                          escalate_after_s=ESCALATE_S)
    [restored] = second.restore(await outbox.db.run(active_alerts.all_open()))
    assert (restored.tier, restored.told) == (2, ("c-daughter", "c-grandson", "c-son"))
    assert restored.snoozed_until == {"c-son": T0 + timedelta(seconds=ESCALATE_S, minutes=30)}
    restarted_mono.elapsed = 99.0
    assert await second.escalations_due() == []
    restarted_mono.elapsed = 100.0  # 200 s before the restart and 100 s after: tier 2 had its 300 s
    assert [a.tier for a in await second.escalations_due()] == [3]
    assert family.told() == [("escalated", ("c-neighbour",))]
    restarted_mono.elapsed = 220.0  # the son's snooze still runs: 30 minutes from before the restart
    await second.repeat_due()
    assert family.told()[-1] == ("repeated", ("c-daughter", "c-grandson", "c-neighbour"))
    await second.resolve(help_call.alert_id)
    assert family.told()[-1] == ("resolved", ("c-daughter", "c-grandson", "c-son", "c-neighbour"))
    await outbox.close()


async def test_an_alert_kept_by_the_version_before_tiers_restores_as_told_to_nobody(tmp_path: Path) -> None:
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    await outbox.intake.save_active_alert("a-old", (
        '{"alert_id":"a-old","kind":"fall","severity":"emergency","state":"raised","resident_id":"r-0001",'
        '"raised_at":"2026-11-23T08:00:00+08:00","message":{"zh":"跌倒","en":"fall"},"evidence":{},'
        '"related_record_ids":[],"acked_by":null}'))
    family, clock = Family(), Clock()
    service = make_service(outbox, family, clock)
    [restored] = service.restore(await outbox.db.run(active_alerts.all_open()))
    assert (restored.tier, restored.told, restored.snoozed_until) == (0, (), {})
    clock.elapsed = ESCALATE_S
    assert [(a.tier, a.told) for a in await service.escalations_due()] == [(1, ("c-daughter", "c-grandson"))]
    await outbox.close()
