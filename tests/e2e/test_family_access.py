"""Family access as the broker enforces it: a real Mosquitto with the generated ACL and a password file.

The hub runs in this process (alert service, MQTT link as the hub's own user, the inbox with its
real routes); family members, the fleet and another hub are separate MQTT clients with their own
accounts. Every "cannot" is checked against a positive control sent after it, so a broker that let
the forbidden message through would fail the test rather than pass it by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import devstack
import pytest
from daemon_outbox import DaemonOutbox
from mqtt_probe import Probe

from gateway.alerts.acks import ReplyOutcome
from gateway.alerts.model import Alert, AlertState, Message
from gateway.broker_acl import render_acl
from gateway.daemon import HUB_SUBSCRIPTIONS
from gateway.family import FamilyAccount
from gateway.inbox import Inbox, Route
from gateway.mqtt import IncomingMessage, LinkSettings, MqttLink
from gateway.respond.contacts import Contact, Roster
from gateway.respond.service import AlertService
from gateway.topics import ACK_FILTER, COMMAND_FILTER, SNOOZE_FILTER
from gateway.vocabulary import AlertKind, Severity

pytestmark = pytest.mark.timeout(90)

TZ = ZoneInfo("Asia/Shanghai")
ROOT = "yiyang/v1"
GW, OTHER_GW = "gw-test", "gw-other"
HUB, FLEET, OTHER_HUB = "hub-gw-test", "fleet", "hub-gw-other"
# The daughter is linked to her mother only; her brother to both parents.
DAUGHTER = FamilyAccount("c-0001", ("r-0001",))
SON = FamilyAccount("c-0002", ("r-0001", "r-0002"))
OTHER_FAMILY = FamilyAccount("c-0009", ("r-0001",))  # the same resident id, on another hub
USERS = (HUB, FLEET, OTHER_HUB, "fleet-other", DAUGHTER.contact_id, SON.contact_id, OTHER_FAMILY.contact_id)


def password(user: str) -> str:
    return f"pw-{user}"


def hub_topic(suffix: str, gateway: str = GW) -> str:
    return f"{ROOT}/{gateway}/{suffix}"


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[devstack.Broker]:
    acl = (render_acl(GW, ROOT, HUB, FLEET, [DAUGHTER, SON])
           + "\n" + render_acl(OTHER_GW, ROOT, OTHER_HUB, "fleet-other", [OTHER_FAMILY]))
    with devstack.mosquitto(tmp_path / "broker", acl=acl, accounts={u: password(u) for u in USERS}) as broker:
        yield broker


@dataclass
class Hub:
    alerts: AlertService
    link: MqttLink
    clock: list[float]
    acks: list[tuple[str, bool, ReplyOutcome]] = field(default_factory=list)
    """Every ack and snooze the hub's inbox handled: (topic, retained, outcome)."""
    commands: list[str] = field(default_factory=list)

    async def raise_for(self, resident: str) -> Alert:
        return await self.alerts.raise_alert(kind=AlertKind.FALL, severity=Severity.EMERGENCY, resident_id=resident,
                                             message=Message("跌倒", "fall"), evidence={"source": "test"})

    def state(self, alert: Alert) -> tuple[AlertState, str | None]:
        found = next(a for a in self.alerts.active if a.alert_id == alert.alert_id)
        return found.state, found.acked_by


@pytest.fixture
async def hub(tmp_path: Path, secured_broker: devstack.Broker) -> AsyncIterator[Hub]:
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    link = MqttLink(LinkSettings(secured_broker.host, secured_broker.port, GW, topic_root=ROOT, username=HUB,
                                 password=password(HUB)), subscriptions=HUB_SUBSCRIPTIONS)
    clock = [0.0]
    roster = Roster.of(Contact(a.contact_id, frozenset(a.residents), app=True) for a in (DAUGHTER, SON))
    alerts = AlertService(outbox=outbox.intake, publisher=link, tz=TZ, now=lambda: datetime.now(UTC),
                          now_monotonic=lambda: clock[0], roster=roster)
    state = Hub(alerts, link, clock)

    async def ack(message: IncomingMessage) -> None:
        outcome = await alerts.handle_ack(message.topic, message.payload, retained=message.retained)
        state.acks.append((message.topic, message.retained, outcome))

    async def snooze(message: IncomingMessage) -> None:
        outcome = await alerts.handle_snooze(message.topic, message.payload, retained=message.retained)
        state.acks.append((message.topic, message.retained, outcome))

    async def command(message: IncomingMessage) -> None:
        state.commands.append(message.topic)

    await link.start()
    await asyncio.wait_for(link.connected.wait(), 10)
    inbox = asyncio.create_task(Inbox([Route(ACK_FILTER, ack), Route(SNOOZE_FILTER, snooze),
                                         Route(COMMAND_FILTER, command)]).serve(link.receive))
    yield state
    inbox.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await inbox
    await link.stop()
    await outbox.close()


def member(broker: devstack.Broker, user: str, topic: str) -> Probe:
    return Probe(broker.host, broker.port, topic, username=user, password=password(user))


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll without blocking the loop: the hub in this process must keep running meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def publish(probe: Probe, topic: str, payload: dict[str, object] | bytes, *, retain: bool = False) -> None:
    await asyncio.to_thread(probe.publish, topic, payload, retain=retain)


async def test_a_family_account_sees_only_its_residents_and_not_another_hub(
        hub: Hub, secured_broker: devstack.Broker) -> None:
    other_hub = member(secured_broker, OTHER_HUB, hub_topic("#", OTHER_GW))
    await publish(other_hub, hub_topic("residents/r-0001/alerts/a-other", OTHER_GW), {"kind": "fall"}, retain=True)
    await publish(other_hub, hub_topic("status", OTHER_GW), {"state": "online"}, retain=True)
    father = await hub.raise_for("r-0002")
    mother = await hub.raise_for("r-0001")
    hub.link.publish("status", {"state": "online"}, retain=True)

    daughter = member(secured_broker, DAUGHTER.contact_id, "#")  # asks for everything on the broker
    son = member(secured_broker, SON.contact_id, hub_topic("residents/+/alerts/+"))
    # Positive controls: what each may read arrives, retained ...
    await until(lambda: bool(daughter.json_on(f"residents/r-0001/alerts/{mother.alert_id}")), "mother's alert")
    await until(lambda: bool(daughter.json_on(hub_topic("status"))), "the hub's status")
    await until(lambda: bool(son.json_on(f"residents/r-0002/alerts/{father.alert_id}")), "father's alert (son)")
    # ... and live, after the forbidden ones were published.
    hidden = await hub.raise_for("r-0002")
    shown = await hub.raise_for("r-0001")
    await until(lambda: bool(daughter.json_on(f"residents/r-0001/alerts/{shown.alert_id}")), "the later alert")

    seen = daughter.topics()
    assert not [t for t in seen if "/r-0002/" in t], f"the daughter saw her father's data: {seen}"
    assert not [t for t in seen if t.startswith(hub_topic("", OTHER_GW))], f"the daughter saw another hub: {seen}"
    assert hub_topic(f"residents/r-0002/alerts/{hidden.alert_id}") not in seen
    assert set(seen) <= {hub_topic("status"), hub_topic(f"residents/r-0001/alerts/{mother.alert_id}"),
                         hub_topic(f"residents/r-0001/alerts/{shown.alert_id}"),
                         hub_topic("residents/r-0001/events/alert"), hub_topic("residents/r-0001/alert_summary")}
    for probe in (daughter, son, other_hub):
        probe.close()


async def test_a_family_account_acknowledges_as_itself_and_only_for_its_residents(
        hub: Hub, secured_broker: devstack.Broker) -> None:
    mother, father, control = (await hub.raise_for("r-0001"), await hub.raise_for("r-0002"),
                               await hub.raise_for("r-0001"))
    daughter = member(secured_broker, DAUGHTER.contact_id, hub_topic("residents/r-0001/#"))
    # Forged: as her brother (whom the hub would believe: he is linked to their mother), and for her father.
    await publish(daughter, hub_topic(f"residents/r-0001/alerts/{mother.alert_id}/ack/{SON.contact_id}"), b"")
    await publish(daughter, hub_topic(f"residents/r-0002/alerts/{father.alert_id}/ack/{DAUGHTER.contact_id}"), b"")
    await publish(daughter, hub_topic(f"residents/r-0002/alerts/{father.alert_id}/ack/{SON.contact_id}"), b"")
    # The positive control, sent after them on the same connection: her own ack of another alert.
    own = hub_topic(f"residents/r-0001/alerts/{control.alert_id}/ack/{DAUGHTER.contact_id}")
    await publish(daughter, own, {"at": "2026-11-23T08:00:00+08:00"})
    await until(lambda: bool(hub.acks), "the hub to handle the daughter's own ack")

    assert [(t, o) for t, _, o in hub.acks] == [(own.removeprefix(hub_topic("")), ReplyOutcome.ACKNOWLEDGED)]
    assert hub.state(control) == (AlertState.ACKNOWLEDGED, DAUGHTER.contact_id)
    assert hub.state(mother) == (AlertState.RAISED, None)
    assert hub.state(father) == (AlertState.RAISED, None)
    hub.clock[0] = 120.0  # the emergency interval: unacknowledged alerts repeat
    assert {a.alert_id for a in await hub.alerts.repeat_due()} == {mother.alert_id, father.alert_id}

    # Her real ack of her mother's alert: the topic says who, whatever the payload claims.
    await publish(daughter, hub_topic(f"residents/r-0001/alerts/{mother.alert_id}/ack/{DAUGHTER.contact_id}"),
                  {"by": SON.contact_id, "note": "on my way"})
    await until(lambda: hub.state(mother)[0] is AlertState.ACKNOWLEDGED, "the mother's alert acknowledged")
    assert hub.state(mother) == (AlertState.ACKNOWLEDGED, DAUGHTER.contact_id)
    await until(lambda: any(e["state"] == "acknowledged" and e["alert_id"] == mother.alert_id
                            for e in daughter.json_on("residents/r-0001/events/alert")), "the family to hear it")
    daughter.close()


async def test_a_family_account_snoozes_as_itself_and_only_for_its_residents(
        hub: Hub, secured_broker: devstack.Broker) -> None:
    mother, father = await hub.raise_for("r-0001"), await hub.raise_for("r-0002")
    daughter = member(secured_broker, DAUGHTER.contact_id, hub_topic("residents/r-0001/#"))
    await publish(daughter, hub_topic(f"residents/r-0001/alerts/{mother.alert_id}/snooze/{SON.contact_id}"),
                  {"minutes": 30})
    await publish(daughter, hub_topic(f"residents/r-0002/alerts/{father.alert_id}/snooze/{DAUGHTER.contact_id}"),
                  {"minutes": 30})
    own = hub_topic(f"residents/r-0001/alerts/{mother.alert_id}/snooze/{DAUGHTER.contact_id}")
    await publish(daughter, own, {"minutes": 30})  # the positive control, after the forgeries
    await until(lambda: bool(hub.acks), "the hub to handle the daughter's own snooze")

    assert [(t, o) for t, _, o in hub.acks] == [(own.removeprefix(hub_topic("")), ReplyOutcome.SNOOZED)]
    snoozed = next(a for a in hub.alerts.active if a.alert_id == mother.alert_id)
    assert list(snoozed.snoozed_until) == [DAUGHTER.contact_id]
    assert hub.state(mother) == (AlertState.RAISED, None)  # snoozed, not acknowledged
    await until(lambda: any(m.get("snoozed_until") for m in daughter.json_on(f"alerts/{mother.alert_id}")),
                "the retained alert to show her snooze")
    daughter.close()


@pytest.mark.parametrize("suffix", [
    "config/desired", "cmd/ping", "cmd/test-alert/result", "status", "residents/r-0001/alerts/forged",
    "residents/r-0001/alerts/forged/snooze/c-0002",
    "residents/r-0001/events/alert", "residents/r-0001/readings/blood_glucose",
])
async def test_a_family_account_cannot_publish_as_the_hub_or_the_fleet(
        hub: Hub, secured_broker: devstack.Broker, suffix: str) -> None:
    alert = await hub.raise_for("r-0001")
    fleet = member(secured_broker, FLEET, f"{ROOT}/#")  # reads everything, so sees whatever got through
    daughter = member(secured_broker, DAUGHTER.contact_id, hub_topic("status"))
    forged = {"forged_by": DAUGHTER.contact_id, "alert_id": "forged", "kind": "fall", "resident_id": "r-0001"}
    await publish(daughter, hub_topic(suffix), forged, retain=True)
    await publish(daughter, hub_topic(suffix, OTHER_GW), forged, retain=True)
    own = hub_topic(f"residents/r-0001/alerts/{alert.alert_id}/ack/{DAUGHTER.contact_id}")
    await publish(daughter, own, b"")  # the positive control, after the forgeries on the same connection
    await until(lambda: own in fleet.topics(), "the fleet to see the daughter's ack")
    await until(lambda: bool(hub.acks), "the hub to handle it")

    assert [m for m in fleet.json_on("") if "forged_by" in m] == []
    assert hub_topic(suffix, OTHER_GW) not in fleet.topics()
    assert hub.commands == []
    # Nothing was retained either: a late subscriber gets the hub's retained alert, then a live status
    # (sent after every retained message), and no forgery in between.
    late = member(secured_broker, FLEET, f"{ROOT}/#")
    await until(lambda: bool(late.json_on(f"residents/r-0001/alerts/{alert.alert_id}")), "the retained alert")
    hub.link.publish("status", {"state": "online", "live": True}, retain=True)
    await until(lambda: any(t == hub_topic("status") and not r for t, _, r in late.messages), "a live status")
    assert [m for m in late.json_on("") if "forged_by" in m] == []
    for probe in (fleet, daughter, late):
        probe.close()


async def test_a_retained_ack_is_cleared_once_the_hub_has_seen_it(hub: Hub, secured_broker: devstack.Broker) -> None:
    alert = await hub.raise_for("r-0001")
    daughter = member(secured_broker, DAUGHTER.contact_id, hub_topic("status"))
    topic = hub_topic(f"residents/r-0001/alerts/{alert.alert_id}/ack/{DAUGHTER.contact_id}")
    await publish(daughter, topic, b"{}", retain=True)  # acks must never be retained; an app may still do it
    await until(lambda: hub.state(alert)[0] is AlertState.ACKNOWLEDGED, "the ack handled")
    # MQTT 3.1.1 strips the retain flag on live delivery, so the broker still holds it ...
    before = member(secured_broker, FLEET, topic)
    await until(lambda: bool(before.topics()), "the retained ack at the broker")
    before.close()

    hub.link._client.socket().close()  # ... until the hub reconnects, sees it retained, and clears it
    await until(lambda: any(t.endswith(f"/ack/{DAUGHTER.contact_id}") and retained for t, retained, _ in hub.acks),
                "the hub to see the retained ack after reconnecting", timeout_s=20)
    after = member(secured_broker, FLEET, hub_topic("residents/r-0001/alerts/#"))
    later = await hub.raise_for("r-0001")  # live, so it reaches `after` behind every retained message
    await until(lambda: any(t.endswith(later.alert_id) and not r for t, _, r in after.messages), "a live alert")
    assert [t for t, _, retained in after.messages if retained and "/ack/" in t] == []
    assert any(t.endswith(f"alerts/{alert.alert_id}") and r for t, _, r in after.messages), "positive control"
    assert hub.state(alert) == (AlertState.ACKNOWLEDGED, DAUGHTER.contact_id)
    for probe in (daughter, after):
        probe.close()
