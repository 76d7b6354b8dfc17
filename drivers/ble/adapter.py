"""Power-cycling a Bluetooth adapter through BlueZ (org.bluez.Adapter1.Powered), for a wedged adapter.

A Pi's built-in adapter can stop reporting advertisements while BlueZ still says it is
discovering; switching it off and on again through bluetoothd clears that without a reboot.
"""

from __future__ import annotations

import asyncio
import logging

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from drivers.errors import DeviceUnavailableError

log = logging.getLogger(__name__)

BLUEZ = "org.bluez"
ADAPTER_INTERFACE = "org.bluez.Adapter1"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"

POWER_OFF_S = 2.0
"""How long the adapter stays off: the controller needs a moment to reset its radio state."""


def adapter_path(adapter: str) -> str:
    return f"/org/bluez/{adapter}"


async def _set_powered(bus: MessageBus, adapter: str, powered: bool) -> None:
    reply = await bus.call(
        Message(
            destination=BLUEZ,
            path=adapter_path(adapter),
            interface=PROPERTIES_INTERFACE,
            member="Set",
            signature="ssv",
            body=[ADAPTER_INTERFACE, "Powered", Variant("b", powered)],
        )
    )
    if reply is None or reply.message_type is MessageType.ERROR:
        reason = reply.error_name if reply is not None else "no reply"
        detail = reply.body[0] if reply is not None and reply.body else ""
        raise DeviceUnavailableError(
            f"BlueZ refused to power {'on' if powered else 'off'} {adapter}: {reason} {detail}; "
            "check that bluetoothd runs and the adapter is not rfkill-blocked (rfkill list)"
        )


async def power_cycle_adapter(adapter: str = "hci0", off_s: float = POWER_OFF_S) -> None:
    """Switch the adapter off and on through bluetoothd on the system bus."""
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, EOFError) as exc:
        raise DeviceUnavailableError(f"cannot reach the system D-Bus to reset {adapter}: {exc}") from exc
    try:
        await _set_powered(bus, adapter, False)
        await asyncio.sleep(off_s)
        await _set_powered(bus, adapter, True)
    finally:
        bus.disconnect()
    log.warning("adapter power-cycled adapter=%s", adapter)
