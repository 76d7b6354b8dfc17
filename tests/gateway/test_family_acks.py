"""Which acknowledgements the hub accepts: the topic names the sender, the links decide, the payload is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_outbox import DaemonOutbox

from gateway.alerts.acks import ACK_MAX_BYTES, ReplyOutcome
from gateway.alerts.model import Alert, AlertState, Message
from gateway.respond.contacts import Contact, Roster
from gateway.respond.service import AlertService
from gateway.topics import ack_topic
from gateway.vocabulary import AlertKind, Severity

TZ = ZoneInfo("Asia/Shanghai")
# A couple: the daughter is linked to her mother (r-0001) only; the son to both; the neighbour has no app.
ROSTER = Roster.of([Contact("c-daughter", frozenset({"r-0001"}), app=True),
                    Contact("c-son", frozenset({"r-0001", "r-0002"}), app=True),
                    Contact("c-neighbour", phone="+8613900139000")])


class Sink:
    def __init__(self) -> None:
        self.published: list[tuple[str, object, bool]] = []

    def publish(self, suffix: str, payload: dict[str, object] | None, *, qos: int = 1, retain: bool = False) -> None:
        self.published.append((suffix, payload, retain))


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[AlertService, Sink, Alert, Alert]]:
    box = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    sink = Sink()
    service = AlertService(outbox=box.intake, publisher=sink, tz=TZ, now=lambda: datetime.now(UTC), roster=ROSTER)
    mother = await service.raise_alert(kind=AlertKind.FALL, severity=Severity.EMERGENCY, resident_id="r-0001",
                                       message=Message("跌倒", "fall"), evidence={})
    father = await service.raise_alert(kind=AlertKind.HYPOGLYCAEMIA, severity=Severity.EMERGENCY,
                                       resident_id="r-0002", message=Message("低血糖", "low"), evidence={})
    yield service, sink, mother, father
    await box.close()


def state_of(service: AlertService, alert: Alert) -> tuple[AlertState, str | None]:
    found = next(a for a in service.active if a.alert_id == alert.alert_id)
    return found.state, found.acked_by


async def test_a_linked_contact_acknowledges_and_the_topic_says_who(hub) -> None:  # type: ignore[no-untyped-def]
    service, _, mother, _ = hub
    outcome = await service.handle_ack(ack_topic("r-0001", mother.alert_id, "c-daughter"),
                                       b'{"by": "c-son", "at": "2026-11-23T08:00:00+08:00", "note": "on my way"}')
    assert outcome is ReplyOutcome.ACKNOWLEDGED
    assert state_of(service, mother) == (AlertState.ACKNOWLEDGED, "c-daughter")  # the payload's "by" is ignored
    again = await service.handle_ack(ack_topic("r-0001", mother.alert_id, "c-son"), b"")
    assert again is ReplyOutcome.ALREADY_ACKNOWLEDGED
    assert state_of(service, mother) == (AlertState.ACKNOWLEDGED, "c-daughter")


async def test_an_empty_payload_is_an_ack(hub) -> None:  # type: ignore[no-untyped-def]
    service, _, _, father = hub
    assert await service.handle_ack(ack_topic("r-0002", father.alert_id, "c-son"), b"") is ReplyOutcome.ACKNOWLEDGED
    assert state_of(service, father) == (AlertState.ACKNOWLEDGED, "c-son")


@pytest.mark.parametrize(
    ("resident", "which", "contact", "refused"),
    [
        ("r-0001", "mother", "c-stranger", ReplyOutcome.UNKNOWN_CONTACT),  # no contact of the hub
        ("r-0001", "mother", "c-neighbour", ReplyOutcome.NOT_LINKED),  # a contact without the app
        ("r-0002", "father", "c-daughter", ReplyOutcome.NOT_LINKED),     # not linked to him
        ("r-0001", "father", "c-daughter", ReplyOutcome.OTHER_RESIDENT),  # his alert under her topic
        ("r-0002", "mother", "c-son", ReplyOutcome.OTHER_RESIDENT),
    ],
)
async def test_acks_from_unknown_contacts_or_for_another_residents_alert_are_refused(
        hub, resident: str, which: str, contact: str, refused: ReplyOutcome) -> None:  # type: ignore[no-untyped-def]
    service, sink, mother, father = hub
    alert = {"mother": mother, "father": father}[which]
    published = len(sink.published)
    assert await service.handle_ack(ack_topic(resident, alert.alert_id, contact), b"") is refused
    assert state_of(service, alert) == (AlertState.RAISED, None)
    assert len(sink.published) == published, "a refused ack changes nothing the family sees"


async def test_an_ack_for_a_resolved_or_unknown_alert_is_refused(hub) -> None:  # type: ignore[no-untyped-def]
    service, _, mother, _ = hub
    await service.resolve(mother.alert_id)
    assert await service.handle_ack(ack_topic("r-0001", mother.alert_id, "c-daughter"), b"") is ReplyOutcome.NOT_ACTIVE
    assert await service.handle_ack(ack_topic("r-0001", "no-such-alert", "c-daughter"), b"") is ReplyOutcome.NOT_ACTIVE


@pytest.mark.parametrize(
    "payload",
    [
        b"x" * (ACK_MAX_BYTES + 1),
        b'{"note": "' + b"x" * ACK_MAX_BYTES + b'"}',
        b'{"a": [[[{"b": 1}]]]}',  # depth 5
        b"[]",
        b'"on my way"',
        b"not json",
        b"\xff\xfe",
    ],
    ids=["too-large", "note-too-large", "too-deep", "array", "string", "not-json", "not-utf8"],
)
async def test_a_payload_out_of_bounds_or_not_an_object_is_refused(hub, payload: bytes) -> None:  # type: ignore[no-untyped-def]
    service, _, mother, _ = hub
    outcome = await service.handle_ack(ack_topic("r-0001", mother.alert_id, "c-daughter"), payload)
    assert outcome is ReplyOutcome.MALFORMED
    assert state_of(service, mother) == (AlertState.RAISED, None)


async def test_a_payload_at_the_bounds_is_accepted(hub) -> None:  # type: ignore[no-untyped-def]
    service, _, mother, _ = hub
    deep = b'{"a": [[{"b": 1}]], "note": "' + b"x" * (ACK_MAX_BYTES - 40) + b'"}'
    assert len(deep) <= ACK_MAX_BYTES
    outcome = await service.handle_ack(ack_topic("r-0001", mother.alert_id, "c-daughter"), deep)
    assert outcome is ReplyOutcome.ACKNOWLEDGED


@pytest.mark.parametrize("topic", ["residents//alerts/a/ack/c-son", "residents/r-0001/alerts/a/ack",
                                   "alerts/a/ack", "residents/r-0001/alerts/a/ack/c-son/extra"])
async def test_a_topic_that_is_not_an_ack_is_refused(hub, topic: str) -> None:  # type: ignore[no-untyped-def]
    service, _, _, _ = hub
    assert await service.handle_ack(topic, b"") is ReplyOutcome.MALFORMED


async def test_a_retained_ack_is_cleared_once_handled_whatever_its_outcome(hub) -> None:  # type: ignore[no-untyped-def]
    service, sink, mother, father = hub
    accepted = ack_topic("r-0001", mother.alert_id, "c-daughter")
    refused = ack_topic("r-0002", father.alert_id, "c-daughter")
    assert await service.handle_ack(accepted, b"", retained=True) is ReplyOutcome.ACKNOWLEDGED
    assert await service.handle_ack(refused, b"{}", retained=True) is ReplyOutcome.NOT_LINKED
    assert (accepted, None, True) in sink.published
    assert (refused, None, True) in sink.published
    live = ack_topic("r-0002", father.alert_id, "c-son")
    assert await service.handle_ack(live, b"", retained=False) is ReplyOutcome.ACKNOWLEDGED
    assert (live, None, True) not in sink.published


def test_the_roster_says_who_may_reply_to_what() -> None:
    assert ROSTER.may_respond("c-son", "r-0002")
    assert not ROSTER.may_respond("c-daughter", "r-0002")
    assert not ROSTER.may_respond("c-neighbour", "r-0001")  # SMS only: no app to reply from
    assert not ROSTER.may_respond("c-stranger", "r-0001")
