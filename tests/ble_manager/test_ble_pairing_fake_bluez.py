"""Technician scan and pairing through the real D-Bus path, against the fake BlueZ."""

from __future__ import annotations

import io

from fake_bluez import FakeBluez, Pairing
from fake_bluez.devices import BloodPressureCuff, GlucoseMeter

from gateway.ble_cli import pair, scan


async def test_scan_prints_progress_then_the_health_devices_nearby(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter())
    cuff = BloodPressureCuff()
    fake_bluez.add(cuff)
    cuff.start_advertising()
    out = io.StringIO()

    assert await scan(1.0, {meter.address.lower(): "glucose-kitchen"}, out) == 0

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("scanning... 1/1 s: 2 devices, 2 health")
    assert lines[1].split() == ["ADDRESS", "NAME", "RSSI", "DRIVERS", "NEEDS", "CONFIGURED", "AS"]
    rows = sorted(line.split() for line in lines[2:4])
    assert rows == [  # a cuff named like an Omron (BLESmart_...) may be served by either, Omron's driver first
        [cuff.address, "BLESmart_0000", "-60", "omron-bp,ble-bps", "pairing+button", "-"],
        [meter.address, "Meter-01", "-60", "ble-gls", "-", "glucose-kitchen"],
    ]
    assert lines[4:6] == ["", "Before binding:"]
    assert lines[6].startswith(f"  {cuff.address} as omron-bp: hold the Bluetooth button until -P- blinks")


async def test_pairing_a_meter_that_shows_a_passkey(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter(requires_bonding=True, pairing=Pairing.PASSKEY_ENTRY, passkey=4321))
    await scan(0.3, {}, io.StringIO())  # the hub must have seen the meter advertise
    questions: list[str] = []

    def technician(question: str) -> str:
        questions.append(question)
        return "004321"

    out = io.StringIO()
    assert await pair(meter.address.lower(), technician, out) == 0
    assert meter.paired
    assert questions == [f"Passkey shown on {meter.address}: "]
    assert out.getvalue() == f"{meter.address} paired\n"


async def test_a_wrong_passkey_fails_with_advice(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter(requires_bonding=True, pairing=Pairing.PASSKEY_ENTRY, passkey=4321))
    await scan(0.3, {}, io.StringIO())
    out = io.StringIO()
    assert await pair(meter.address, lambda _question: "111111", out) == 1
    assert not meter.paired
    assert "wrong passkey, or the device is not in pairing mode" in out.getvalue()


async def test_pairing_a_device_the_hub_never_saw_says_to_scan_first(fake_bluez: FakeBluez) -> None:
    out = io.StringIO()
    assert await pair("A4:C1:38:99:99:99", lambda _question: "0", out) == 1
    assert "run a scan with it advertising" in out.getvalue()
