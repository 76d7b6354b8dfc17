"""The Bluetooth adapter, as BlueZ sees it on the system D-Bus: there, and powered.

Asked the way the BLE code talks to BlueZ (dbus-fast, drivers/ble/adapter.py): the ObjectManager's
``GetManagedObjects`` on ``org.bluez``, then the adapter's ``org.bluez.Adapter1`` properties.
``DBUS_SYSTEM_BUS_ADDRESS`` points it at another bus (the tests' fake BlueZ).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from drivers.ble.adapter import ADAPTER_INTERFACE, BLUEZ, adapter_path
from gateway.doctor.report import Check, ok, problem, skipped

NAME = "bluetooth"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
NOT_RUNNING_ERRORS = frozenset({"org.freedesktop.DBus.Error.ServiceUnknown",
                                "org.freedesktop.DBus.Error.NameHasNoOwner"})
RESTART_BLUEZ = "systemctl restart bluetooth"


async def bluetooth_check(*, needed: bool, adapter: str = "hci0", timeout_s: float = 5.0) -> Check:
    """``needed``: BLE devices are configured (without any, the adapter is not the hub's business)."""
    if not needed:
        return skipped(NAME, "no Bluetooth devices configured")
    try:
        objects = await asyncio.wait_for(_managed_objects(), timeout_s)
    except TimeoutError:
        return problem(NAME, f"BlueZ did not answer within {timeout_s:g} s", RESTART_BLUEZ)
    except (OSError, EOFError) as exc:
        return problem(NAME, f"cannot reach the system D-Bus ({exc})", "systemctl restart dbus bluetooth")
    except _BluezError as exc:
        if exc.name in NOT_RUNNING_ERRORS:
            return problem(NAME, "bluetoothd is not running (nothing owns org.bluez on the system D-Bus)",
                           "systemctl enable --now bluetooth")
        return problem(NAME, f"BlueZ refused to list its objects: {exc.name} {exc.text}", RESTART_BLUEZ)
    return adapter_verdict(objects, adapter)


def adapter_verdict(objects: dict[str, dict[str, dict[str, Any]]], adapter: str) -> Check:
    """The verdict on ``adapter`` from BlueZ's object tree (property values already unwrapped)."""
    properties = objects.get(adapter_path(adapter), {}).get(ADAPTER_INTERFACE)
    if properties is None:
        others = sorted(path.rsplit("/", 1)[-1] for path, interfaces in objects.items()
                        if ADAPTER_INTERFACE in interfaces)
        seen = f"; BlueZ has {', '.join(others)}" if others else "; BlueZ sees no adapter at all"
        return problem(NAME, f"no Bluetooth adapter {adapter}{seen}",
                       "plug the adapter in (or enable the Pi's own: rfkill unblock bluetooth), "
                       f"then {RESTART_BLUEZ}")
    address = properties.get("Address", "?")
    if properties.get("Powered") is not True:
        if properties.get("PowerState") == "off-blocked":
            return problem(NAME, f"adapter {adapter} ({address}) is blocked by rfkill", "rfkill unblock bluetooth")
        return problem(NAME, f"adapter {adapter} ({address}) is switched off", "bluetoothctl power on")
    return ok(NAME, f"adapter {adapter} ({address}) present and powered")


class _BluezError(Exception):
    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text


async def _managed_objects() -> dict[str, dict[str, dict[str, Any]]]:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(Message(destination=BLUEZ, path="/", interface=OBJECT_MANAGER,
                                       member="GetManagedObjects"))
    finally:
        bus.disconnect()
    if reply is None:
        raise _BluezError("no reply", "")
    if reply.message_type is MessageType.ERROR:
        raise _BluezError(reply.error_name or "error", str(reply.body[0]) if reply.body else "")
    tree: dict[str, dict[str, dict[str, Any]]] = {
        path: {interface: {name: variant.value for name, variant in properties.items()}
               for interface, properties in interfaces.items()}
        for path, interfaces in reply.body[0].items()
    }
    return tree
