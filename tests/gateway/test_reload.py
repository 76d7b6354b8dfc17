"""Reloading a configuration in the running daemon: the plan (pure) and the daemon doing it, in process.

Real parts: a Mosquitto, two reference platforms, the OneTouch simulator on a pty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import devstack
import pytest
from gatewayproc import platform_records

from gateway.config import GatewayConfig, parse_config
from gateway.daemon import Daemon
from gateway.reload import ReloadPlan, plan_reload

BASE = """
[gateway]
id = "gw-test"
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

[[residents]]
id = "r-0001"
"""

METER = """
[[devices]]
id = "{id}"
driver = "onetouch-ultra2"
port = "{port}"
resident = "r-0001"
poll_interval_s = {poll}
"""


def config(tmp: Path, platform: devstack.Platform, broker: devstack.Broker, extra: str = "") -> GatewayConfig:
    text = BASE.format(data=tmp / "data", url=platform.url, secret=platform.secret_file, port=broker.port) + extra
    return parse_config(text, "test.toml")


def meter(device_id: str, link: Path, poll: float = 0.5) -> str:
    return METER.format(id=device_id, port=link, poll=poll)


# -- the plan ---------------------------------------------------------------------------------------


def plan(old: GatewayConfig, new: GatewayConfig) -> ReloadPlan:
    return plan_reload(old, new)


def test_the_plan_names_only_what_changed(tmp_path: Path) -> None:
    platform = devstack.Platform("http://127.0.0.1:1", 1, tmp_path / "p.db", tmp_path / "s", "gw-test", None)  # type: ignore[arg-type]
    broker = devstack.Broker("127.0.0.1", 1883, None)  # type: ignore[arg-type]
    one = config(tmp_path, platform, broker, meter("m-1", Path("/dev/ttyUSB0")))
    assert plan(one, one) == ReloadPlan()
    assert not plan(one, one).changes_anything

    two = config(tmp_path, platform, broker, meter("m-1", Path("/dev/ttyUSB0")) + meter("m-2", Path("/dev/ttyUSB1")))
    assert plan(one, two) == ReloadPlan(serial_added=("m-2",))
    assert plan(two, one) == ReloadPlan(serial_removed=("m-2",))
    slower = config(tmp_path, platform, broker, meter("m-1", Path("/dev/ttyUSB0"), poll=5.0))
    assert plan(one, slower) == ReloadPlan(serial_changed=("m-1",))
    assert plan(one, slower).serial_to_check == ("m-1",)

    moved = dataclasses.replace(one, platform=dataclasses.replace(one.platform, url="http://127.0.0.1:2"))
    assert plan(one, moved) == ReloadPlan(uplink=True)
    stricter = dataclasses.replace(one, thresholds=dataclasses.replace(one.thresholds, systolic_crisis_mmhg=170))
    assert plan(one, stricter) == ReloadPlan(thresholds=True)
    assert plan(one, stricter).describe() == ["thresholds"]


# -- the daemon, in process ---------------------------------------------------------------------------


@dataclasses.dataclass
class Running:
    daemon: Daemon
    task: asyncio.Task[None]


@pytest.fixture
async def running(tmp_path: Path, broker: devstack.Broker, platform: devstack.Platform) -> AsyncIterator[Running]:
    daemon = Daemon(config(tmp_path, platform, broker))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await eventually(lambda: getattr(daemon, "hub", None) is not None and daemon._group is not None)
    yield Running(daemon, task)
    stop.set()
    await asyncio.wait_for(task, 30)


async def eventually(condition: object, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


def glucose_at(platform: devstack.Platform) -> int:
    return sum(1 for r in platform_records(platform.db) if r["type"] == "blood_glucose")


@pytest.mark.timeout(120)
async def test_a_meter_added_removed_and_a_platform_moved_in_the_running_process(
        tmp_path: Path, running: Running, broker: devstack.Broker, platform: devstack.Platform) -> None:
    daemon = running.daemon
    pid = os.getpid()
    with devstack.onetouch_meter(tmp_path / "meter", records=3) as sim:
        added = config(tmp_path, platform, broker, meter("m-1", sim.link))
        assert (await daemon.reload(added)).serial_added == ("m-1",)
        await eventually(lambda: glucose_at(platform) == 3)
        assert "device:m-1" in daemon._device_tasks
        assert "m-1" in daemon.board.devices

        # The platform moves: the uplink is rebuilt, the outbox (and what it holds) stays.
        with devstack.platform_server(tmp_path / "platform-2", "gw-test") as second:
            moved_cfg = config(tmp_path, second, broker, meter("m-1", sim.link))
            moved = await daemon.reload(moved_cfg)
            assert moved.uplink and not moved.serial_changed  # the meter kept its session
            sim.command("mute")
            await eventually(lambda: daemon.board.devices["m-1"].connected is False)
            sim.command("add 120")
            sim.command("unmute")
            await eventually(lambda: glucose_at(second) == 1)
            assert glucose_at(platform) == 3

            removed = await daemon.reload(config(tmp_path, second, broker))
            assert removed.serial_removed == ("m-1",)
            assert "device:m-1" not in daemon._device_tasks
            assert "m-1" not in daemon.board.devices
    assert os.getpid() == pid
    assert not running.task.done()


@pytest.mark.timeout(120)
async def test_health_after_a_reload_sees_a_dead_platform_and_a_missing_port(
        tmp_path: Path, running: Running, broker: devstack.Broker, platform: devstack.Platform) -> None:
    daemon = running.daemon
    await asyncio.wait_for(daemon.mqtt.connected.wait(), 10)
    before = daemon.cfg

    # A good change first: the probe record reaches the platform, the broker is there.
    stricter = dataclasses.replace(before, platform=dataclasses.replace(before.platform, timeout_s=3.0))
    await daemon.reload(stricter)
    good = await daemon.check_health(before, stricter, grace_s=10, version=7, broker_was_connected=True)
    assert good.ok, good.reason
    probes = [r for r in platform_records(platform.db) if r["type"] == "device_status"]
    assert [p["values"] for p in probes] == [{"event": "configuration_applied", "version": 7}]

    # A platform nobody answers at, and a meter on a port that does not exist.
    dead = dataclasses.replace(stricter, platform=dataclasses.replace(stricter.platform,
                                                                      url=f"http://127.0.0.1:{devstack.free_port()}"))
    broken = parse_config(
        BASE.format(data=tmp_path / "data", url=dead.platform.url, secret=platform.secret_file, port=broker.port)
        + meter("m-9", tmp_path / "no-such-port"), "broken.toml")
    await daemon.reload(broken)
    bad = await daemon.check_health(stricter, broken, grace_s=3, version=8, broker_was_connected=True)
    assert not bad.ok
    assert bad.path == "platform"
    platform_part, port_part = bad.reason.split("; ")
    assert platform_part.startswith("platform: the platform did not accept an upload within the grace period")
    assert port_part.startswith(f"devices[0].port: device m-9: {tmp_path / 'no-such-port'} did not open")

    # Back to the good configuration: the held probe of version 8 reaches the platform that is there.
    await daemon.reload(stricter)
    await eventually(lambda: len([r for r in platform_records(platform.db) if r["type"] == "device_status"]) == 2)
