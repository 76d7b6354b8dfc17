"""What the parts built from the driver catalogue say about each driver that was there before it.

Scan recognition, Home Assistant's reading kinds, which devices get a session of their own and
which the BLE manager serves: pinned per driver, so the catalogue cannot change them unnoticed.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from drivers.catalogue import DeviceOption, Role, Transport, names, spec_of
from drivers.model import ReadingType
from gateway.ble_scan import drivers_for
from gateway.ble_wiring import BleDevices
from gateway.clock import ClockSyncMode, SystemClock
from gateway.config import DeviceSettings, DriverName
from gateway.driver_registry import ble_devices, serial_devices
from gateway.homeassistant.discovery import readings_by_resident


def device(driver: str, address: str = "C4:7C:8D:6A:11:02") -> DeviceSettings:
    """A valid entry for any row of the catalogue: adding a driver needs nothing here."""
    spec = spec_of(driver)
    where: dict[str, str] = {"port": "/dev/ttyUSB0"} if spec.transport is Transport.SERIAL else {"address": address}
    if DeviceOption.BIND_KEY in spec.options and spec.binding.key:
        where["bind_key"] = "b65f0e3b2cd35e8a4a3f6e9c5d7e1a20"
    resident = "" if spec.role is Role.NOTIFIES else "r-1"
    return DeviceSettings(id=driver, driver=DriverName(driver), resident=resident, **where)


@pytest.mark.parametrize(("services", "service_data", "drivers"), [
    (["00001810-0000-1000-8000-00805f9b34fb"], [], ("ble-bps",)),
    (["00001808-0000-1000-8000-00805f9b34fb"], [], ("ble-gls",)),
    (["00001822-0000-1000-8000-00805f9b34fb"], [], ("ble-plx",)),
    (["00001809-0000-1000-8000-00805f9b34fb"], [], ("ble-hts",)),
    (["e95d0753-251d-470a-a062-fa1922dfa9a8"], [], ("microbit-accel",)),
    (["EF680400-9B35-4933-9B10-52FFA9740042"], [], ("thingy-motion",)),
    ([], ["0000fcd2-0000-1000-8000-00805f9b34fb"], ("bthome-button",)),
    (["14839ac4-7d7e-415c-9a42-167340cf2339"], [], ("o2ring",)),
    (["BA11F08C-5F14-0B0D-1080-007CBE238851"], [], ("ichoice-oximeter",)),
    (["ba11f08c-5f14-0b0d-10a0-007cbe238851"], [], ()),
    (["0000180f-0000-1000-8000-00805f9b34fb", "0000fe95-0000-1000-8000-00805f9b34fb"], [], ()),
    (["00001810-0000-1000-8000-00805f9b34fb", "0000180f-0000-1000-8000-00805f9b34fb"],
     ["0000fcd2-0000-1000-8000-00805f9b34fb"], ("ble-bps", "bthome-button")),
    ([], ["0000fe95-0000-1000-8000-00805f9b34fb"], ("xiaomi-mibeacon",)),
])
def test_scan_names_the_driver_an_advertisement_asks_for(services: list[str], service_data: list[str],
                                                         drivers: tuple[str, ...]) -> None:
    assert drivers_for(services, service_data) == drivers


@pytest.mark.parametrize(("driver", "kinds"), [
    ("onetouch-ultra2", {ReadingType.BLOOD_GLUCOSE}),
    ("suntech-nibp", {ReadingType.BLOOD_PRESSURE}),
    ("ble-bps", {ReadingType.BLOOD_PRESSURE}),
    ("ble-gls", {ReadingType.BLOOD_GLUCOSE}),
    ("ble-plx", {ReadingType.SPO2}),
    ("ble-hts", {ReadingType.BODY_TEMPERATURE}),
    ("mr60fda1", set()), ("bthome-button", set()), ("microbit-accel", set()), ("thingy-motion", set()),
    ("xiaomi-mibeacon", {ReadingType.BODY_TEMPERATURE}), ("and-bp", {ReadingType.BLOOD_PRESSURE}),
    ("viatom-oximeter", {ReadingType.SPO2}), ("o2ring", {ReadingType.SPO2}), ("ichoice-oximeter", {ReadingType.SPO2}),
])
def test_home_assistant_shows_the_readings_a_driver_takes(driver: str, kinds: set[ReadingType]) -> None:
    assert readings_by_resident(["r-1"], [device(driver)]) == {"r-1": frozenset(kinds)}


def test_serial_devices_get_sessions_of_their_own_the_modem_and_ble_devices_do_not() -> None:
    devices = tuple(device(name) for name in DriverName)
    assert [d.driver for d in serial_devices(devices)] == ["onetouch-ultra2", "mr60fda1", "suntech-nibp"]
    assert [d.driver for d in ble_devices(devices)] == names(lambda spec: spec.transport is Transport.BLE)


async def _nothing(*_args: object) -> None:
    return None


def test_the_ble_manager_serves_every_ble_driver_with_its_session() -> None:
    devices = [device(name, address=f"C4:7C:8D:6A:11:{index:02X}") for index, name in enumerate(DriverName)]
    ble = BleDevices(devices, clock=SystemClock(ClockSyncMode.AUTO), tz=ZoneInfo("Asia/Shanghai"),
                     on_readings=_nothing, on_motion=_nothing, on_event=_nothing,
                     cursor_get=_nothing, cursor_set=_nothing,  # type: ignore[arg-type]
                     report_error=lambda _component, _message: None)
    sessions = {device_id: type(session).__name__ for device_id, session in ble.sessions.items()}
    assert set(sessions) == set(names(lambda spec: spec.transport is Transport.BLE))  # every row has its session
    assert {name: sessions[name] for name in ("ble-bps", "ble-gls", "bthome-button", "microbit-accel")} == {
        "ble-bps": "MeasurementSession", "ble-gls": "GlucoseMeterSession", "bthome-button": "BTHomeButtonSession",
        "microbit-accel": "MotionSession"}
