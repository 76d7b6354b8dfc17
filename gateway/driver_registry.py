"""How the gateway builds what serves each serial driver of the catalogue, and how a session is started.

What a driver is lives in its catalogue row (drivers.catalogue); this module adds what needs the
gateway: the factory that builds each serial driver's session, and the SMS modem's, from the
device's validated settings and the hub's sinks. Both tables are keyed by the rows' names and
checked against the catalogue when this module is imported. BLE sessions are built by
gateway.ble_wiring, imported only when a BLE device is configured (bleak and bthome-ble cost a
hub without BLE devices some 20 MB).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol, runtime_checkable

from drivers.catalogue import DriverSpec, Role, Transport, check_served
from drivers.clock import Clock
from drivers.serial.gsm_modem import DEFAULT_BAUDRATE as MODEM_BAUDRATE
from drivers.serial.gsm_modem import GsmModem
from drivers.serial.mr60fda1 import Mr60fda1Session
from drivers.serial.onetouch import OneTouchSession
from drivers.serial.suntech import SuntechNibpSession
from gateway.config import DeviceSettings
from gateway.hub import Hub
from gateway.status import DeviceStatusBoard

log = logging.getLogger(__name__)


class Session(Protocol):
    async def run(self) -> None: ...


class Notifier(Protocol):
    """A device that carries alerts out (the SMS modem): the daemon runs it, the SMS notifier sends with it."""

    async def run(self) -> None: ...

    async def send_sms(self, number: str, text: str) -> object: ...


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


def _gsm_modem(device: DeviceSettings) -> Notifier:
    return GsmModem(device_id=device.id, port=device.port, baudrate=device.baudrate or MODEM_BAUDRATE)


def _has_own_session(spec: DriverSpec) -> bool:
    # A serial device other than the notifier gets a session of its own; BLE devices share one manager.
    return spec.transport is Transport.SERIAL and spec.role is not Role.NOTIFIES


def _notifies(spec: DriverSpec) -> bool:
    return spec.role is Role.NOTIFIES


SERIAL_SESSIONS: Mapping[str, SessionFactory] = {
    "onetouch-ultra2": _onetouch,
    "mr60fda1": _mr60fda1,
    "suntech-nibp": _suntech_nibp,
}
NOTIFIERS: Mapping[str, Callable[[DeviceSettings], Notifier]] = {
    "gsm-modem": _gsm_modem,
}
check_served("serial session factories (gateway.driver_registry.SERIAL_SESSIONS)", SERIAL_SESSIONS, _has_own_session)
check_served("notifier factories (gateway.driver_registry.NOTIFIERS)", NOTIFIERS, _notifies)


def serial_devices(devices: tuple[DeviceSettings, ...]) -> list[DeviceSettings]:
    """Devices with a session of their own (serial); BLE devices share one manager."""
    return [d for d in devices if _has_own_session(d.spec)]


def ble_devices(devices: tuple[DeviceSettings, ...]) -> list[DeviceSettings]:
    return [d for d in devices if d.transport is Transport.BLE]


def notifier_device(devices: tuple[DeviceSettings, ...]) -> DeviceSettings | None:
    """The device that carries alerts out (the configuration allows one)."""
    return next((d for d in devices if _notifies(d.spec)), None)


def start_device(device: DeviceSettings, ctx: SessionContext, board: DeviceStatusBoard) -> Session:
    board.register(device.id, device.driver)
    log.info("device session starting device=%s driver=%s", device.id, device.driver)
    return SERIAL_SESSIONS[device.driver](device, ctx)


def build_notifier(device: DeviceSettings, board: DeviceStatusBoard) -> Notifier:
    board.register(device.id, device.driver)
    return NOTIFIERS[device.driver](device)
