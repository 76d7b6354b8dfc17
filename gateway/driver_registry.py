"""Which driver serves which ``driver = "..."`` name, and how a device session is started.

A table, not a ladder: adding a device type is one row here plus its driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol, runtime_checkable

from drivers.clock import Clock
from drivers.serial.mr60fda1 import Mr60fda1Session
from drivers.serial.onetouch import OneTouchSession
from drivers.serial.suntech import SuntechNibpSession
from gateway.config import DRIVER_TRANSPORT, DeviceSettings, Transport
from gateway.hub import Hub
from gateway.status import DeviceStatusBoard

log = logging.getLogger(__name__)


class Session(Protocol):
    async def run(self) -> None: ...


@runtime_checkable
class Measurable(Protocol):
    """A session the hub can ask to measure now (the family doctor's "measure now" command)."""

    async def measure_now(self) -> None: ...


@runtime_checkable
class Resyncable(Protocol):
    """A session that can be asked for its device's stored records again (the fleet's ``resync``).

    ``resync`` only asks: the records come when the device is next read, which ``resync_when``
    says in words for the fleet's answer (a BLE meter must advertise first, a cabled one is polled).
    The records the hub already holds come again and the outbox drops them (their source keys).
    """

    @property
    def resync_when(self) -> str: ...

    async def resync(self) -> None: ...


@dataclass(frozen=True)
class SessionContext:
    """What every device session may be given: the hub clock and time zone, and the hub's sinks."""

    clock: Clock
    tz: tzinfo
    hub: Hub


SessionFactory = Callable[[DeviceSettings, SessionContext], Session]


def _onetouch(device: DeviceSettings, ctx: SessionContext) -> Session:
    return OneTouchSession(device_id=device.id, resident_id=device.resident, port=device.port, clock=ctx.clock,
                           tz=ctx.tz, sink=ctx.hub.on_readings, on_event=ctx.hub.on_event,
                           poll_interval_s=device.poll_interval_s)


def _mr60fda1(device: DeviceSettings, ctx: SessionContext) -> Session:
    kwargs = {"baudrate": device.baudrate} if device.baudrate else {}
    return Mr60fda1Session(device_id=device.id, resident_id=device.resident, port=device.port, clock=ctx.clock,
                           on_event=ctx.hub.on_event, **kwargs)


def _suntech_nibp(device: DeviceSettings, ctx: SessionContext) -> Session:
    kwargs = {"baudrate": device.baudrate} if device.baudrate else {}
    return SuntechNibpSession(device_id=device.id, resident_id=device.resident, port=device.port, clock=ctx.clock,
                              on_readings=ctx.hub.on_readings, on_event=ctx.hub.on_event,
                              poll_interval_s=device.poll_interval_s,
                              schedule_s=device.measure_every_min * 60 or None, **kwargs)


SESSIONS: dict[str, SessionFactory] = {
    "onetouch-ultra2": _onetouch,
    "mr60fda1": _mr60fda1,
    "suntech-nibp": _suntech_nibp,
}


def ble_drivers() -> frozenset[str]:
    """Every BLE driver is served by the one BLE manager (gateway.ble_wiring, imported only when a BLE
    device is configured: bleak and bthome-ble cost a hub without BLE devices some 20 MB)."""
    return frozenset(name for name, transport in DRIVER_TRANSPORT.items() if transport is Transport.BLE)


NOTIFIER_DRIVERS = frozenset({"gsm-modem"})
"""Devices that carry alerts out rather than measure: the daemon builds them itself."""


def available_drivers() -> frozenset[str]:
    return frozenset(SESSIONS) | ble_drivers() | NOTIFIER_DRIVERS


def unsupported_drivers(devices: tuple[DeviceSettings, ...]) -> list[str]:
    """Problems for devices whose driver this build cannot run (checked before the daemon starts)."""
    available = available_drivers()
    return [
        f"devices[{i}].driver: {d.driver!r} is not available in this gateway build "
        f"(available: {', '.join(sorted(available))}); remove the device or update the gateway"
        for i, d in enumerate(devices) if d.driver not in available
    ]


def serial_devices(devices: tuple[DeviceSettings, ...]) -> list[DeviceSettings]:
    """Devices with a session of their own (serial); BLE devices share one manager."""
    return [d for d in devices if d.driver in SESSIONS]


def ble_devices(devices: tuple[DeviceSettings, ...]) -> list[DeviceSettings]:
    return [d for d in devices if d.transport is Transport.BLE]


def start_device(device: DeviceSettings, ctx: SessionContext, board: DeviceStatusBoard) -> Session:
    board.register(device.id, device.driver)
    log.info("device session starting device=%s driver=%s", device.id, device.driver)
    return SESSIONS[device.driver](device, ctx)
