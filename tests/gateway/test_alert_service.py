"""The alert path with real parts: a Mosquitto broker, the MQTT link, a SQLite outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_outbox import DaemonOutbox
from mqtt_probe import Probe

from gateway.alerts.acks import ReplyOutcome
from gateway.alerts.model import AlertState, Message
from gateway.mqtt import LinkSettings, MqttLink
from gateway.mqtt_policy import Subscription
from gateway.respond.contacts import Contact, Roster
from gateway.respond.service import AlertService
from gateway.store import active_alerts, records
from gateway.store.api import NewRecord, Priority
from gateway.topics import ACK_FILTER
from gateway.vocabulary import AlertKind, Severity

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[DaemonOutbox]:
    box = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    yield box
    await box.close()


async def _wait(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_alert_is_stored_first_then_published_retained_and_acked_over_mqtt(broker, outbox) -> None:  # type: ignore[no-untyped-def]
    probe = Probe(broker.host, broker.port, "yiyang/v1/gw-test/#")
    link = MqttLink(LinkSettings(broker.host, broker.port, "gw-test"), subscriptions=(Subscription(ACK_FILTER, 4096),))
    await link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    service = AlertService(outbox=outbox.intake, publisher=link, tz=TZ, now=lambda: datetime.now(UTC),
                           roster=Roster.of([Contact("c-0001", frozenset({"r-1"}), app=True)]))
    # An older reading is waiting: the alert must still be uploaded before it.
    await outbox.intake.accept([NewRecord("blood_glucose", Priority.READING, '{"type":"blood_glucose"}',
                                   datetime(2026, 1, 1, tzinfo=UTC))])

    alert = await service.raise_alert(kind=AlertKind.HYPOGLYCAEMIA, severity=Severity.EMERGENCY,
                                      resident_id="r-1", message=Message("低血糖", "Hypoglycaemia"),
                                      evidence={"value": 2.5}, related_record_ids=["rec-1"])

    batch = await outbox.db.run(records.pending_batch())
    assert [p.type for p in batch] == ["alert", "blood_glucose"]
    stored = json.loads(batch[0].body_json)
    assert stored["values"]["alert_id"] == alert.alert_id
    assert stored["values"]["state"] == "raised"
    event = probe.wait_for("residents/r-1/events/alert")[0]
    assert event == {"alert_id": alert.alert_id, "kind": "hypoglycaemia", "severity": "emergency",
                     "state": "raised", "resident_id": "r-1", "raised_at": alert.raised_at.astimezone(TZ).isoformat(
                         timespec="milliseconds"), "message": {"zh": "低血糖", "en": "Hypoglycaemia"},
                     "evidence": {"value": 2.5}, "acked_by": None, "tier": 1, "told": ["c-0001"],
                     "snoozed_until": {}, "notify": ["c-0001"]}
    # A family member who connects later still sees the active alert (retained).
    late = Probe(broker.host, broker.port, f"yiyang/v1/gw-test/residents/r-1/alerts/{alert.alert_id}")
    assert late.wait_for(f"residents/r-1/alerts/{alert.alert_id}")[0]["state"] == "raised"
    late.close()

    # The family acknowledges from their app: who did is the topic's contact id, not the payload's.
    probe.publish(f"yiyang/v1/gw-test/residents/r-1/alerts/{alert.alert_id}/ack/c-0001",
                  {"by": "c-9999", "at": "now"})
    msg = await asyncio.wait_for(link.receive(), 5)
    assert await service.handle_ack(msg.topic, msg.payload, retained=msg.retained) is ReplyOutcome.ACKNOWLEDGED
    assert service.active[0].state is AlertState.ACKNOWLEDGED
    events = probe.wait_for("residents/r-1/events/alert", 2)
    assert events[1]["state"] == "acknowledged" and events[1]["acked_by"] == "c-0001"

    await service.resolve(alert.alert_id)
    assert service.active == ()
    probe.wait_for("residents/r-1/events/alert", 3)
    cleared = Probe(broker.host, broker.port, f"yiyang/v1/gw-test/residents/r-1/alerts/{alert.alert_id}")
    await asyncio.sleep(0.5)
    assert cleared.messages == []  # the empty retained message cleared it
    cleared.close()
    assert [json.loads(p.body_json)["values"]["state"] for p in await outbox.db.run(records.pending_batch())
            if p.type == "alert"] == ["raised", "acknowledged", "resolved"]
    probe.close()
    await link.stop()


async def test_status_goes_offline_by_last_will_when_the_hub_dies(broker) -> None:  # type: ignore[no-untyped-def]
    link = MqttLink(LinkSettings(broker.host, broker.port, "gw-will", keepalive_s=5))
    await link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    link.publish("status", {"state": "online"}, retain=True)
    probe = Probe(broker.host, broker.port, "yiyang/v1/gw-will/status")
    probe.wait_for("status")
    # Simulate a crash: drop the socket without a DISCONNECT packet.
    link._client.socket().close()
    await _wait(lambda: any(m.get("state") == "offline" for m in probe.json_on("status")), 15)
    probe.close()
    await asyncio.to_thread(link._client.loop_stop)


async def test_unacknowledged_alerts_repeat_at_their_severity_interval_until_acked(broker, outbox) -> None:  # type: ignore[no-untyped-def]
    probe = Probe(broker.host, broker.port, "yiyang/v1/gw-rep/#")
    link = MqttLink(LinkSettings(broker.host, broker.port, "gw-rep"))
    await link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    clock = [0.0]
    service = AlertService(outbox=outbox.intake, publisher=link, tz=TZ, now=lambda: datetime.now(UTC),
                           now_monotonic=lambda: clock[0])
    emergency = await service.raise_alert(kind=AlertKind.HYPOGLYCAEMIA, severity=Severity.EMERGENCY,
                                          resident_id="r-1", message=Message("低", "low"), evidence={})
    await service.raise_alert(kind=AlertKind.FEVER, severity=Severity.WARNING, resident_id="r-1",
                              message=Message("热", "fever"), evidence={})
    urgent = await service.raise_alert(kind=AlertKind.HYPOTENSION, severity=Severity.URGENT, resident_id="r-1",
                                       message=Message("低压", "low bp"), evidence={})
    clock[0] = 119.9
    assert await service.repeat_due() == []
    clock[0] = 120.0
    assert [(a.alert_id, a.state) for a in await service.repeat_due()] == [(emergency.alert_id,
                                                                             AlertState.REPEATED)]
    clock[0] = 239.0
    assert await service.repeat_due() == []  # counted from the last repeat
    await service.acknowledge(emergency.alert_id, "c-1")
    clock[0] = 900.0
    assert [a.alert_id for a in await service.repeat_due()] == [urgent.alert_id]  # acked: no more repeats
    probe.wait_for("events/alert", 6)
    assert [e["state"] for e in probe.json_on("events/alert")] == [
        "raised", "raised", "raised", "repeated", "acknowledged", "repeated"]
    probe.close()
    await link.stop()


async def test_open_alerts_survive_a_restart(tmp_path: Path) -> None:
    class Sink:
        def __init__(self) -> None:
            self.published: list[tuple[str, object]] = []

        def publish(self, suffix: str, payload: object, **_k: object) -> None:
            self.published.append((suffix, payload))

    box = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    first = AlertService(outbox=box.intake, publisher=Sink(), tz=TZ, now=lambda: datetime.now(UTC))
    open_one = await first.raise_alert(kind=AlertKind.HYPOGLYCAEMIA, severity=Severity.EMERGENCY, resident_id="r-1",
                                       message=Message("低血糖", "low"), evidence={"value": 2.5},
                                       related_record_ids=["rec-1"])
    closed = await first.raise_alert(kind=AlertKind.FEVER, severity=Severity.URGENT, resident_id="r-1",
                                     message=Message("发热", "fever"), evidence={})
    await first.acknowledge(open_one.alert_id, "c-1")
    await first.resolve(closed.alert_id)
    await box.close()

    box = await DaemonOutbox.open(tmp_path / "outbox.sqlite")  # the daemon restarted
    sink = Sink()
    second = AlertService(outbox=box.intake, publisher=sink, tz=TZ, now=lambda: datetime.now(UTC))
    restored = second.restore(await box.db.run(active_alerts.all_open()))
    assert restored == [open_one.with_state(AlertState.ACKNOWLEDGED, acked_by="c-1")]
    second.republish_active()
    assert sink.published == [
        (f"residents/r-1/alerts/{open_one.alert_id}", sink.published[0][1]),
        ("residents/r-1/alert_summary", {"resident_id": "r-1", "active": True, "open": 1, "unacknowledged": 0,
                                         "severity": "emergency", "alert_ids": [open_one.alert_id]}),
    ]
    await second.resolve(open_one.alert_id)  # the all-clear still reaches everyone
    assert await box.db.run(active_alerts.all_open()) == []
    await box.close()
