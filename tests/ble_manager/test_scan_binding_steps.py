"""``yiyang scan`` says what to do before binding a device, from its driver's catalogue row."""

from __future__ import annotations

import dataclasses
import io

import pytest
from fake_bluez import FakeBluez
from fake_bluez.devices import BloodPressureCuff

from drivers.catalogue import CATALOGUE, AdvertMatcher, Binding, DeviceOption, DriverSpec, Role, Transport
from drivers.model import ReadingType
from gateway.ble_cli import binding_steps, scan
from gateway.ble_scan import Sighting


def test_the_scan_says_what_to_do_before_binding_a_device_that_needs_it() -> None:
    cuff = DriverSpec(name="omron-bp", transport=Transport.BLE, role=Role.MEASURES,
                      readings=frozenset({ReadingType.BLOOD_PRESSURE}),
                      advertises=(AdvertMatcher(local_name="BLESmart_*"),),
                      binding=Binding(pairing=True, hold="the Bluetooth button until -P- blinks"))
    keyed = DriverSpec(name="keyed-button", transport=Transport.BLE, role=Role.SIGNALS, advertisements_only=True,
                       options=frozenset({DeviceOption.BIND_KEY}), binding=Binding(key=True),
                       advertises=(AdvertMatcher(service_data_uuid="0000fe95-0000-1000-8000-00805f9b34fb"),))
    specs = {**CATALOGUE, cuff.name: cuff, keyed.name: keyed}
    sightings = [Sighting("C4:7C:8D:6A:11:02", "BLESmart_0000", -70, ("ble-bps", "omron-bp")),
                 Sighting("A4:C1:38:00:00:01", None, -55, ("keyed-button",)),
                 Sighting("A4:C1:38:00:00:02", None, -50, ("bthome-button",))]
    assert binding_steps(sightings, specs) == [
        "A4:C1:38:00:00:01 as keyed-button: put its 32-hex-digit key in bind_key of its [[devices]] entry, then "
        "bind it",
        "C4:7C:8D:6A:11:02 as omron-bp: hold the Bluetooth button until -P- blinks; pair it (yiyang pair "
        "C4:7C:8D:6A:11:02), then bind it",
    ]


OMRON_STEPS = ("hold the Bluetooth button until -P- blinks (the hub writes its key at its first connection, "
               "while -P- shows); pair it")


def test_the_drivers_that_need_something_before_binding_say_what() -> None:
    sightings = [Sighting(f"C4:7C:8D:6A:11:{i:02X}", None, -60, (name,)) for i, name in enumerate(CATALOGUE)]
    omron, xiaomi, a_and_d = (f"C4:7C:8D:6A:11:{list(CATALOGUE).index(name):02X}"
                              for name in ("omron-bp", "xiaomi-mibeacon", "and-bp"))
    assert binding_steps(sightings) == [
        f"{omron} as omron-bp: {OMRON_STEPS} (yiyang pair {omron}), then bind it",
        f"{xiaomi} as xiaomi-mibeacon: put its 32-hex-digit key in bind_key of its [[devices]] entry, then bind it",
        f"{a_and_d} as and-bp: hold the power button until Pr shows; pair it (yiyang pair {a_and_d}), then bind it",
    ]


async def test_a_scan_through_bleak_prints_the_steps_after_the_table(fake_bluez: FakeBluez,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cuffs = CATALOGUE["ble-bps"]
    monkeypatch.setitem(CATALOGUE, "ble-bps", dataclasses.replace(cuffs, binding=Binding(pairing=True)))
    cuff = BloodPressureCuff()
    fake_bluez.add(cuff)
    cuff.start_advertising()
    out = io.StringIO()

    assert await scan(1.0, {}, out) == 0

    lines = out.getvalue().splitlines()
    assert lines[1].split() == ["ADDRESS", "NAME", "RSSI", "DRIVERS", "NEEDS", "CONFIGURED", "AS"]
    # The emulated cuff is named like an Omron (BLESmart_...): it is offered to both drivers, the one its
    # name matches (the more specific) first.
    assert lines[3:] == ["", "Before binding:",
                         f"  {cuff.address} as omron-bp: {OMRON_STEPS} (yiyang pair {cuff.address}), then bind it",
                         f"  {cuff.address} as ble-bps: pair it (yiyang pair {cuff.address}), then bind it"]
