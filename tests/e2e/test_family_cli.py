"""``yiyang family add|remove|list`` against a real Mosquitto that uses the files the command wrote.

The broker starts with the hub's and the fleet's accounts only. ``yiyang family add`` writes the
contact into the configuration, its password into the broker's password file and the ACL generated
from the configuration into its acl_file, then SIGHUPs the broker; the family member then connects
with the password it printed. The hub runs in this process with the contacts of the edited
configuration. Every "cannot" is checked against a positive control sent after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import devstack
import paho.mqtt.client as paho
import pytest
from daemon_outbox import DaemonOutbox
from mqtt_probe import Probe
from paho.mqtt.enums import CallbackAPIVersion

from gateway.alerts.acks import ReplyOutcome
from gateway.alerts.model import Alert, AlertState, Message
from gateway.broker_acl import acl_for_config
from gateway.cli import main
from gateway.config import load_config
from gateway.daemon import HUB_SUBSCRIPTIONS
from gateway.family import roster_of
from gateway.inbox import Inbox, Route
from gateway.mqtt import IncomingMessage, LinkSettings, MqttLink
from gateway.respond.service import AlertService
from gateway.topics import ACK_FILTER, SNOOZE_FILTER
from gateway.vocabulary import AlertKind, Severity

pytestmark = pytest.mark.timeout(120)

TZ = ZoneInfo("Asia/Shanghai")
ROOT, GW, OTHER_GW = "yiyang/v1", "gw-test", "gw-other"
HUB, FLEET = "hub-gw-test", "fleet"
SERVICE_PASSWORDS = {HUB: "pw-hub-0123456789", FLEET: "pw-fleet-0123456789"}
SON_PASSWORD = "the-sons-own-password-42"
CONFIG = f"""\
# The Wang family's hub.
[gateway]
id = "{GW}"

[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"

[mqtt]
username = "{HUB}"

[[residents]]
id = "r-0001"

[[residents]]
id = "r-0002"

# The son: SMS only, for now.
[[contacts]]
id = "c-0002"
phone = "+8613800138000"  # his mobile
"""


def hub_topic(suffix: str, gateway: str = GW) -> str:
    return f"{ROOT}/{gateway}/{suffix}"


@dataclass
class Setup:
    config: Path
    broker: devstack.Broker
    workdir: Path

    def family(self, *args: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str]:
        """Run ``yiyang family ...`` on the broker's own files; (exit code, what it printed)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if monkeypatch is not None:
                monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
            code = main(["family", *args, "--config", str(self.config), "--password-file",
                         str(self.workdir / "passwd"), "--acl-file", str(self.workdir / "acl"),
                         "--reload", f"pid:{self.broker.proc.pid}"])
        return code, out.getvalue()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG, encoding="utf-8")
    workdir = tmp_path / "broker"
    # The broker as set up on a hub before any family account: the hub, the fleet, the generated ACL.
    with devstack.mosquitto(workdir, acl=acl_for_config(load_config(config)), accounts=SERVICE_PASSWORDS) as broker:
        yield Setup(config, broker, workdir)


@dataclass
class Hub:
    alerts: AlertService
    link: MqttLink
    replies: list[tuple[str, ReplyOutcome]] = field(default_factory=list)

    async def raise_for(self, resident: str) -> Alert:
        return await self.alerts.raise_alert(kind=AlertKind.FALL, severity=Severity.EMERGENCY, resident_id=resident,
                                             message=Message("跌倒", "fall"), evidence={})

    def state(self, alert: Alert) -> tuple[AlertState, str | None]:
        found = next(a for a in self.alerts.active if a.alert_id == alert.alert_id)
        return found.state, found.acked_by


@contextlib.asynccontextmanager
async def running_hub(tmp_path: Path, setup: Setup) -> AsyncIterator[Hub]:
    """The hub with the contacts of the configuration as it is now on disk."""
    cfg = load_config(setup.config)
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    link = MqttLink(LinkSettings(setup.broker.host, setup.broker.port, GW, topic_root=ROOT, username=HUB,
                                 password=SERVICE_PASSWORDS[HUB]), subscriptions=HUB_SUBSCRIPTIONS)
    alerts = AlertService(outbox=outbox.intake, publisher=link, tz=TZ, now=lambda: datetime.now(UTC),
                          roster=roster_of(cfg.contacts, [r.id for r in cfg.residents]))
    hub = Hub(alerts, link)

    async def ack(message: IncomingMessage) -> None:
        hub.replies.append((message.topic, await alerts.handle_ack(message.topic, message.payload)))

    async def snooze(message: IncomingMessage) -> None:
        hub.replies.append((message.topic, await alerts.handle_snooze(message.topic, message.payload)))

    await link.start()
    await asyncio.wait_for(link.connected.wait(), 10)
    inbox = asyncio.create_task(Inbox([Route(ACK_FILTER, ack), Route(SNOOZE_FILTER, snooze)]).serve(link.receive))
    try:
        yield hub
    finally:
        inbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inbox
        await link.stop()
        await outbox.close()


def connects(broker: devstack.Broker, user: str, password: str) -> bool:
    """Whether the broker accepts this user name and password (a CONNACK without failure)."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.username_pw_set(user, password)
    answered, accepted = threading.Event(), []

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        accepted.append(not getattr(reason, "is_failure", True))
        answered.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert answered.wait(5), "no CONNACK"
        return accepted[0]
    finally:
        client.disconnect()
        client.loop_stop()


async def until_connects(broker: devstack.Broker, user: str, password: str, *, expected: bool) -> None:
    """Until the reloaded broker takes (or refuses) the account; off the loop, where the hub runs."""
    deadline = asyncio.get_running_loop().time() + 10
    while await asyncio.to_thread(connects, broker, user, password) is not expected:
        still = "refuses" if expected else "takes"
        assert asyncio.get_running_loop().time() < deadline, f"the broker still {still} {user}"
        await asyncio.sleep(0.05)


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def publish(probe: Probe, topic: str, payload: dict[str, object] | bytes, *, retain: bool = False) -> None:
    await asyncio.to_thread(probe.publish, topic, payload, retain=retain)


def printed_password(output: str, contact: str) -> str:
    found = re.search(rf"broker user {contact} password \(shown once; enter it in the family app\): (\S+)", output)
    assert found, output
    return found.group(1)


async def test_family_add_makes_an_account_that_reads_its_residents_and_acknowledges_and_nothing_else(
        tmp_path: Path, setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = setup.family("add", "c-0001", "--resident", "r-0001")
    assert code == 0, output
    daughter_password = printed_password(output, "c-0001")
    code, output = setup.family("add", "c-0002", "--tier", "2", "--password-stdin", stdin=SON_PASSWORD + "\n",
                                monkeypatch=monkeypatch)
    assert code == 0 and "password (shown once" not in output, output
    await until_connects(setup.broker, "c-0001", daughter_password, expected=True)
    assert connects(setup.broker, "c-0002", SON_PASSWORD)
    text = setup.config.read_text(encoding="utf-8")
    assert "# The Wang family's hub." in text and "# his mobile" in text  # the technician's comments stay
    son = load_config(setup.config).contacts[0]
    assert (son.id, son.app, son.phone, son.tier, son.residents) == ("c-0002", True, "+8613800138000", 2, ())

    # Not theirs to use: the hub's and the fleet's identities, with the family's passwords.
    for user in (HUB, FLEET):
        assert not connects(setup.broker, user, daughter_password)
        assert not connects(setup.broker, user, SON_PASSWORD)
    assert not connects(setup.broker, "c-0001", SON_PASSWORD)

    async with running_hub(tmp_path, setup) as hub:
        fleet = Probe(setup.broker.host, setup.broker.port, f"{ROOT}/#", username=FLEET,
                      password=SERVICE_PASSWORDS[FLEET])
        await asyncio.to_thread(fleet.publish, hub_topic("config/desired", OTHER_GW), {"other": "hub"}, retain=True)
        daughter = Probe(setup.broker.host, setup.broker.port, "#", username="c-0001", password=daughter_password)
        father = await hub.raise_for("r-0002")
        mother = await hub.raise_for("r-0001")
        hub.link.publish("status", {"state": "online"}, retain=True)
        await until(lambda: bool(daughter.json_on(f"residents/r-0001/alerts/{mother.alert_id}")), "her mother's alert")
        await until(lambda: bool(daughter.json_on(hub_topic("status"))), "the hub's status")

        # She cannot write what is the hub's or the fleet's, nor acknowledge as her brother or for her father ...
        forged = {"forged_by": "c-0001", "alert_id": "forged", "kind": "fall", "resident_id": "r-0001"}
        for suffix in ("config/desired", "cmd/ping", "status", "residents/r-0001/alerts/forged",
                       f"residents/r-0001/alerts/{mother.alert_id}/ack/c-0002",
                       f"residents/r-0002/alerts/{father.alert_id}/ack/c-0001"):
            await publish(daughter, hub_topic(suffix), forged)
        # ... and her own ack, after them on the same connection, goes through.
        own = f"residents/r-0001/alerts/{mother.alert_id}/ack/c-0001"
        await publish(daughter, hub_topic(own), {"note": "on my way"})
        await until(lambda: bool(hub.replies), "the hub to take her ack")
        assert hub.replies == [(own, ReplyOutcome.ACKNOWLEDGED)]
        assert hub.state(mother) == (AlertState.ACKNOWLEDGED, "c-0001")
        assert hub.state(father) == (AlertState.RAISED, None)
        await until(lambda: hub_topic(own) in fleet.topics(), "the fleet to see her ack (control)")
        assert [m for m in fleet.json_on("") if "forged_by" in m] == []

        seen = daughter.topics()
        assert not [t for t in seen if "/r-0002/" in t], f"she read her father's data: {seen}"
        assert not [t for t in seen if not t.startswith(hub_topic(""))], f"she read another hub's topics: {seen}"
        assert hub_topic("config/desired", OTHER_GW) in fleet.topics()  # it was there to be read

        # The list agrees with the broker's files.
        code, output = setup.family("list")
        assert code == 0, output
        assert re.search(r"c-0002\s+2\s+urgent\s+yes\s+yes\s+r-0001,r-0002", output), output

        # Removed: she cannot connect again, and her open connection reads nothing new.
        code, output = setup.family("remove", "c-0001")
        assert code == 0, output
        assert "contact c-0001 removed" in output and "broker user c-0001 removed" in output
        await until_connects(setup.broker, "c-0001", daughter_password, expected=False)
        son = Probe(setup.broker.host, setup.broker.port, hub_topic("residents/r-0001/#"), username="c-0002",
                    password=SON_PASSWORD)
        later = await hub.raise_for("r-0001")
        await until(lambda: bool(son.json_on(f"alerts/{later.alert_id}")), "her brother to see the later alert")
        assert not daughter.json_on(f"alerts/{later.alert_id}")
        assert [c.id for c in load_config(setup.config).contacts] == ["c-0002"]
        for probe in (fleet, daughter, son):
            probe.close()


def test_family_list_tells_where_the_broker_and_the_configuration_disagree(setup: Setup) -> None:
    code, output = setup.family("add", "c-0001", "--resident", "r-0001")
    assert code == 0
    (setup.workdir / "acl").write_text("# edited by hand\n", encoding="utf-8")
    setup.config.write_text(setup.config.read_text(encoding="utf-8") + """
[[contacts]]
id = "c-0003"
app = true
""", encoding="utf-8")
    code, output = setup.family("list")
    assert code == 1
    assert "PROBLEM: contact c-0003 has app = true but no broker user" in output
    assert "is not the ACL of this configuration" in output
    setup.config.write_text(CONFIG, encoding="utf-8")  # c-0001 is gone from the configuration by hand
    code, output = setup.family("list")
    assert "PROBLEM: broker user c-0001 " in output and "yiyang family remove c-0001" in output


def test_family_add_refuses_before_writing_anything(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    before = {name: (setup.workdir / name).read_bytes() for name in ("passwd", "acl")}
    config_before = setup.config.read_text(encoding="utf-8")
    for args in (["c-0001", "--resident", "r-0009"], [HUB], ["c 1"]):
        code, _ = setup.family("add", *args)
        assert code == 1
    assert "no resident has id 'r-0009'" in capsys.readouterr().err
    code, _ = setup.family("remove", FLEET)
    assert code == 1
    assert {name: (setup.workdir / name).read_bytes() for name in ("passwd", "acl")} == before
    assert setup.config.read_text(encoding="utf-8") == config_before
