"""The fleet's ``scan`` against the fake BlueZ, with the hub's BLE devices running as the daemon runs them.

BlueZ gives each D-Bus client one discovery session, and bleak has one connection per process: inside
the daemon the scan must listen to the BLE manager's scanner, and the manager must keep hearing its
devices afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from zoneinfo import ZoneInfo

import pytest
from fake_bluez import FakeBluez
from fake_bluez.devices import BloodPressureCuff, BloodPressureRecord, GlucoseMeter, TemperatureRecord, Thermometer
from loopcheck import running

from drivers.model import BloodPressure, DeviceEvent, MotionBlock, Reading
from gateway.ble_scan import HubScan
from gateway.ble_wiring import BleDevices
from gateway.clock import ClockSyncMode, SystemClock
from gateway.config import parse_config
from gateway.fleet.errors import CommandError
from gateway.fleet.scan_command import scan

SHANGHAI = ZoneInfo("Asia/Shanghai")
CUFF, METER, THERMOMETER = "C4:7C:8D:6A:11:02", "A4:C1:38:00:00:02", "00:09:1F:00:00:07"


def configuration(devices: Sequence[tuple[str, str, str]]) -> str:
    rows = "".join(f'[[devices]]\nid = "{i}"\ndriver = "{d}"\naddress = "{a}"\nresident = "r-0001"\n'
                   for i, d, a in devices)
    return f"""
[gateway]
id = "gw-test"
[platform]
url = "https://platform.example.cn"
secret_file = "/etc/yiyang/platform.secret"
[[residents]]
id = "r-0001"
{rows}"""


class Readings:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.arrived = asyncio.Event()
        self.cursors: dict[str, str] = {}

    async def on_readings(self, readings: Sequence[Reading]) -> None:
        self.readings.extend(readings)
        self.arrived.set()

    async def on_motion(self, _block: MotionBlock) -> None:
        return

    async def on_event(self, _event: DeviceEvent) -> None:
        return

    async def cursor_get(self, name: str) -> str | None:
        return self.cursors.get(name)

    async def cursor_set(self, name: str, value: str) -> None:
        self.cursors[name] = value

    async def wait_for(self, count: int, timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.readings) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def hub_ble(sink: Readings) -> AsyncIterator[BleDevices]:
    """The configured cuff and meter as the daemon runs them (gateway.ble_wiring.BleDevices)."""
    cfg = parse_config(configuration([("bp-bedroom", "ble-bps", CUFF), ("glucose-kitchen", "ble-gls", METER)]),
                       "gw.toml")
    ble = BleDevices(cfg.devices, clock=SystemClock(ClockSyncMode.ASSUME_SYNCED), tz=SHANGHAI,
                     on_readings=sink.on_readings, on_motion=sink.on_motion, on_event=sink.on_event,
                     cursor_get=sink.cursor_get, cursor_set=sink.cursor_set, report_error=lambda *_: None)
    async with running(ble):
        yield ble


async def test_a_scan_listens_through_the_running_manager_which_still_hears_its_devices_after(
        fake_bluez: FakeBluez) -> None:
    cuff = fake_bluez.add(BloodPressureCuff(CUFF))
    fake_bluez.add(GlucoseMeter(METER, record_count=3))
    thermometer = fake_bluez.add(Thermometer(THERMOMETER))  # in range, not configured
    sink = Readings()
    async with hub_ble(sink) as ble:
        await sink.wait_for(3)  # the meter's records: the manager is scanning
        handler = scan(HubScan(ble.tap, ble.scanning), {CUFF: "bp-bedroom", METER: "glucose-kitchen"})
        scanning = asyncio.create_task(handler({"seconds": "1.5"}))
        thermometer.measure(TemperatureRecord(celsius=36.8, site=1))  # advertises during the scan
        answer = await scanning
        assert len(fake_bluez.discovery_sessions) == 1  # the manager's own, and no other
        # After the scan the manager still hears a cuff that measures.
        cuff.measure(BloodPressureRecord(systolic=121, diastolic=79, mean_arterial=93, pulse_rate=64))
        await sink.wait_for(4)
    assert sink.readings[3].measurement == BloodPressure(systolic=121, diastolic=79, mean_arterial=93, pulse=64)
    assert answer["listened_with"] == "the BLE manager's scanner"
    assert "note" not in answer
    seen = {device["address"]: device for device in answer["devices"]}
    assert seen[METER] == {"address": METER, "name": "Meter-01", "rssi": seen[METER]["rssi"],
                           "drivers": ["ble-gls"], "configured_as": "glucose-kitchen"}
    assert (seen[THERMOMETER]["drivers"], seen[THERMOMETER]["configured_as"]) == (["ble-hts"], None)
    assert answer["devices_left_out"] == 0


async def test_a_hub_without_ble_devices_scans_with_a_scanner_of_its_own(fake_bluez: FakeBluez) -> None:
    thermometer = fake_bluez.add(Thermometer(THERMOMETER))
    thermometer.measure(TemperatureRecord(celsius=36.8, site=1))
    answer = await scan(HubScan(), {})({"seconds": 1})
    assert answer["listened_with"] == "a scanner of its own (no BLE devices configured)"
    assert [(d["address"], d["drivers"], d["configured_as"]) for d in answer["devices"]] == [
        (THERMOMETER, ["ble-hts"], None)]
    assert not fake_bluez.discovering  # its session ended with the scan


async def test_a_scanner_of_its_own_beside_the_running_manager_is_refused_by_bluez(
        fake_bluez: FakeBluez) -> None:
    # Why the daemon listens through the manager: one discovery session per D-Bus client.
    fake_bluez.add(GlucoseMeter(METER, record_count=1))
    sink = Readings()
    async with hub_ble(sink):
        await sink.wait_for(1)
        with pytest.raises(CommandError, match=r"cannot scan: .*InProgress"):
            await scan(HubScan(), {})({"seconds": 0.5})
        assert len(fake_bluez.discovery_sessions) == 1


async def test_seconds_must_be_from_half_a_second_to_a_minute() -> None:
    handler = scan(HubScan(), {})
    for bad in (0, 61, "soon", None, True):
        with pytest.raises(CommandError, match=r"seconds must be a number from 0\.5 to 60"):
            await handler({"seconds": bad})
