"""Home Assistant discovery end to end: the daemon, a simulated meter, Mosquitto, and Home Assistant's view.

``ha_emulator.HomeAssistant`` reads the broker as Home Assistant's MQTT integration does (configs,
state topics and value templates, availability), so "the state of its sensor" is what Home
Assistant would show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import devstack
import pytest
from daemon_outbox import DaemonOutbox
from gatewayproc import GATEWAY_ID, GatewayProcess
from ha_emulator import HomeAssistant

from gateway.alerts.model import Message
from gateway.broker_acl import acl_for_config
from gateway.config import GatewayConfig, parse_config
from gateway.daemon import Daemon
from gateway.homeassistant.discovery import readings_by_resident
from gateway.homeassistant.publisher import DiscoveryPublisher
from gateway.mqtt import LinkSettings, MqttLink
from gateway.respond.service import AlertService
from gateway.vocabulary import AlertKind, Severity

pytestmark = pytest.mark.timeout(120)

NODE = f"yiyang-{GATEWAY_ID}"
GLUCOSE = f"homeassistant/sensor/{NODE}/r-0001_glucose/config"
ALERT = f"homeassistant/binary_sensor/{NODE}/r-0001_alert/config"
CONFIG = """
[gateway]
id = "{gw}"
data_dir = "{data}"
clock_sync = "assume_synced"

[platform]
url = "{url}"
secret_file = "{secret}"
timeout_s = 2.0
backoff_initial_s = 0.1
backoff_max_s = 1.0

[mqtt]
port = {port}
keepalive_s = 5

[homeassistant]
discovery = {discovery}

[[residents]]
id = "r-0001"
{residents}
{devices}
"""
METER = """
[[devices]]
id = "glucose-kitchen"
driver = "onetouch-ultra2"
port = "{link}"
resident = "r-0001"
poll_interval_s = 0.5
"""


def config_text(tmp: Path, platform: devstack.Platform, broker: devstack.Broker, *, meter: Path | None,
                discovery: bool = True, residents: str = "") -> str:
    return CONFIG.format(gw=GATEWAY_ID, data=tmp / "data", url=platform.url, secret=platform.secret_file,
                         port=broker.port, discovery=str(discovery).lower(), residents=residents,
                         devices=METER.format(link=meter) if meter else "")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[devstack.Platform]:
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as p:
        yield p


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[devstack.PtySimulator]:
    with devstack.onetouch_meter(tmp_path / "meter", records=1) as m:
        yield m


def test_a_meter_reading_is_the_state_of_its_sensor_and_the_last_will_makes_it_unavailable(
        tmp_path: Path, platform: devstack.Platform, broker: devstack.Broker, meter: devstack.PtySimulator) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path, platform, broker, meter=meter.link), encoding="utf-8")
    ha = HomeAssistant(broker.host, broker.port)
    gateway = GatewayProcess(config, tmp_path / "daemon.log")
    gateway.start()
    try:
        ha.wait(lambda: {GLUCOSE, ALERT} <= set(ha.configs()), "the glucose and alert sensors")
        glucose, alert = ha.configs()[GLUCOSE], ha.configs()[ALERT]
        assert sorted(ha.configs()) == [ALERT, GLUCOSE]  # a glucose meter: no blood pressure, SpO2 ...
        ha.wait(lambda: ha.available(glucose) and ha.state(glucose) is not None, "the meter's first reading")
        assert ha.state(alert) == "OFF"

        meter.command("mute")
        ha.wait(lambda: "meter disconnected" in gateway.log_text(), "the gateway to notice the meter gone")
        meter.command("add 120")  # mg/dL: 6.66 mmol/L
        meter.command("unmute")
        ha.wait(lambda: ha.state(glucose) == "6.66", "the new reading as the sensor's state")
        meter.command("mute")
        ha.wait(lambda: gateway.log_text().count("meter disconnected") >= 2, "the gateway to notice again")
        meter.command("add 50")  # 2.8 mmol/L: hypoglycaemia
        meter.command("unmute")
        ha.wait(lambda: ha.state(glucose) == "2.78" and ha.state(alert) == "ON", "the low glucose and its alert")

        gateway.signal(signal.SIGKILL)  # no goodbye: only the broker's last will can say it
        gateway.wait(10)
        ha.wait(lambda: not ha.available(glucose) and not ha.available(alert), "the entities unavailable")
        assert ha.state(glucose) == "2.78"  # the last value stays, greyed out
    finally:
        gateway.kill()
        ha.close()


@dataclasses.dataclass
class Running:
    daemon: Daemon
    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def running(tmp_path: Path, platform: devstack.Platform, broker: devstack.Broker,
                  meter: devstack.PtySimulator) -> AsyncIterator[Running]:
    cfg = parse_config(config_text(tmp_path, platform, broker, meter=meter.link, residents='[[residents]]\n'
                                   'id = "r-0002"\n'), "test.toml")
    daemon = Daemon(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    yield Running(daemon, stop, task)
    stop.set()
    await asyncio.wait_for(task, 30)


async def until(ha: HomeAssistant, predicate: object, what: str) -> None:
    await asyncio.to_thread(ha.wait, predicate, what)


async def test_a_reload_publishes_again_and_a_removed_device_or_resident_is_cleared(
        tmp_path: Path, running: Running, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    ha = HomeAssistant(broker.host, broker.port)
    r2_alert = f"homeassistant/binary_sensor/{NODE}/r-0002_alert/config"
    await until(ha, lambda: set(ha.configs()) == {GLUCOSE, ALERT, r2_alert}, "both residents' entities")

    without_meter = parse_config(config_text(tmp_path, platform, broker, meter=None, residents='[[residents]]\n'
                                             'id = "r-0002"\n'), "test.toml")
    plan = await running.daemon.reload(without_meter)
    assert plan.serial_removed == ("glucose-kitchen",)
    await until(ha, lambda: set(ha.configs()) == {ALERT, r2_alert}, "the glucose sensor cleared")
    assert ha.latest(GLUCOSE) == b""  # an empty retained message: Home Assistant removes the entity

    one_resident = parse_config(config_text(tmp_path, platform, broker, meter=None), "test.toml")
    await running.daemon.reload(one_resident)
    await until(ha, lambda: set(ha.configs()) == {ALERT}, "the second resident's device cleared")

    off: GatewayConfig = parse_config(config_text(tmp_path, platform, broker, meter=None, discovery=False),
                                      "test.toml")
    assert (await running.daemon.reload(off)).homeassistant
    await until(ha, lambda: ha.configs() == {}, "every config cleared with discovery off")
    ha.close()


async def test_a_resident_removed_while_the_hub_was_down_is_cleared_at_the_next_start(
        tmp_path: Path, running: Running, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    ha = HomeAssistant(broker.host, broker.port)
    r2_alert = f"homeassistant/binary_sensor/{NODE}/r-0002_alert/config"
    await until(ha, lambda: r2_alert in ha.configs(), "the second resident's entity")
    running.stop.set()
    await asyncio.wait_for(running.task, 30)

    daemon = Daemon(parse_config(config_text(tmp_path, platform, broker, meter=meter.link), "test.toml"))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await until(ha, lambda: set(ha.configs()) == {GLUCOSE, ALERT}, "the removed resident's entity cleared")
    stop.set()
    await asyncio.wait_for(task, 30)
    ha.close()


async def test_home_assistants_broker_account_reads_its_entities_and_not_the_alerts(tmp_path: Path) -> None:
    cfg = parse_config(f"""
[gateway]
id = "{GATEWAY_ID}"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
[mqtt]
username = "hub"
[homeassistant]
discovery = true
[[residents]]
id = "r-0001"
""", "secured.toml")
    passwords = {"hub": "pw-hub-0123456789", "homeassistant": "pw-ha-0123456789"}
    with devstack.mosquitto(tmp_path / "broker", acl=acl_for_config(cfg), accounts=passwords) as secured:
        link = MqttLink(LinkSettings(secured.host, secured.port, GATEWAY_ID, username="hub",
                                     password=passwords["hub"]))
        outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
        alerts = AlertService(outbox=outbox.intake, publisher=link, tz=ZoneInfo("Asia/Shanghai"),
                              now=lambda: datetime.now(UTC), residents=["r-0001"])
        discovery = DiscoveryPublisher(link, outbox.db)
        link.on_connect(discovery.connected)
        await link.start()
        await asyncio.wait_for(link.connected.wait(), 10)
        await discovery.configure(cfg.homeassistant, gateway_id=GATEWAY_ID, hub_root=link.root.rstrip("/"),
                                  version="test", residents=readings_by_resident(["r-0001"], ()))
        ha = HomeAssistant(secured.host, secured.port, username="homeassistant", password=passwords["homeassistant"])
        fall = await alerts.raise_alert(kind=AlertKind.FALL, severity=Severity.EMERGENCY, resident_id="r-0001",
                                        message=Message("跌倒", "fall"), evidence={})
        link.publish("status", {"state": "online"}, retain=True)
        await until(ha, lambda: ALERT in ha.configs() and ha.state(ha.configs()[ALERT]) == "ON", "the alert state")
        await until(ha, lambda: ha.available(ha.configs()[ALERT]), "the hub online")
        seen = set(ha.probe.topics())
        assert not [t for t in seen if f"/alerts/{fall.alert_id}" in t or t.endswith("/events/alert")], seen
        await link.stop()
        await outbox.close()
        ha.close()
