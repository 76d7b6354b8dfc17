"""Builds the BLE side of the hub from the configured BLE devices; the daemon runs :meth:`BleDevices.run`.

Two tables map each BLE driver of the catalogue (drivers.catalogue) to the factory of the session
that serves it: one for the devices the manager connects to, one for those it only hears
advertise; both are checked against the catalogue's rows when this module is imported. The
sessions are built once, so the fleet can reach them (a glucose meter's ``resync``) and what they
were asked outlives a restart of the manager; the manager, which owns the one scanner and every
connection, is built afresh each time the supervisor starts it. Its adverts are also passed to
:attr:`BleDevices.tap`, which the fleet's ``scan`` listens to instead of starting a second scanner
(gateway.ble_scan says why).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from drivers.ble.and_bp import AndCuffPreparation
from drivers.ble.gls_session import GlucoseMeterSession
from drivers.ble.manager import BleManager
from drivers.ble.motion_session import MICROBIT, THINGY52, MotionSession, Wearable
from drivers.ble.omron_session import OmronCuffSession
from drivers.ble.oximeter_sessions import IChoiceOximeterSession, O2RingSession, ViatomOximeterSession
from drivers.ble.sessions import (
    AdvertSession,
    BTHomeButtonSession,
    ConnectedSession,
    CursorGet,
    CursorSet,
    DeviceTag,
    MeasurementSession,
    Sinks,
)
from drivers.ble.sinocare_session import SinocareMeterSession
from drivers.ble.uuids import BLOOD_PRESSURE_MEASUREMENT, PLX_SPOT_CHECK_MEASUREMENT, TEMPERATURE_MEASUREMENT
from drivers.catalogue import DriverSpec, Transport, check_served
from drivers.clock import Clock
from drivers.model import DeviceEvent, MotionBlock, Reading
from gateway.ble_scan import AdvertTap
from gateway.config import BleNotify, DeviceSettings

log = logging.getLogger(__name__)

STATUS_COMPONENT = "ble"
DEFAULT_MOTION_HZ = 50.0
MOTION_BLOCK_SAMPLES = 1
"""Hand every notification to the hub as it arrives: the hub batches for the detector itself and
flushes early when a fall decision is due (gateway.detect.motion), so batching here would only
add latency to fall alerts."""


@dataclass(frozen=True, slots=True)
class _Context:
    sinks: Sinks
    home_tz: tzinfo
    cursor_get: CursorGet
    cursor_set: CursorSet


def _tag(device: DeviceSettings) -> DeviceTag:
    return DeviceTag(device_id=device.id, resident_id=device.resident, address=device.address, model=device.driver)


def _start_notify(device: DeviceSettings) -> bool:
    return device.ble_notify is BleNotify.START_NOTIFY


def _bps(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return MeasurementSession(_tag(device), c.sinks, c.home_tz, [BLOOD_PRESSURE_MEASUREMENT],
                              use_start_notify=_start_notify(device))


def _hts(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return MeasurementSession(_tag(device), c.sinks, c.home_tz, [TEMPERATURE_MEASUREMENT],
                              use_start_notify=_start_notify(device))


def _plx(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return MeasurementSession(_tag(device), c.sinks, c.home_tz, [PLX_SPOT_CHECK_MEASUREMENT], continuous_spo2=True,
                              use_start_notify=_start_notify(device))


def _gls(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return GlucoseMeterSession(_tag(device), c.sinks, c.home_tz, c.cursor_get, c.cursor_set,
                               use_start_notify=_start_notify(device))


def _motion(device: DeviceSettings, c: _Context, profile: Wearable) -> ConnectedSession:
    return MotionSession(_tag(device), c.sinks, profile, sample_rate_hz=device.sample_rate_hz or DEFAULT_MOTION_HZ,
                         block_size=MOTION_BLOCK_SAMPLES, use_start_notify=_start_notify(device))


def _microbit(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return _motion(device, c, MICROBIT)


def _thingy(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return _motion(device, c, THINGY52)


def _omron(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return OmronCuffSession(_tag(device), c.sinks, c.home_tz, c.cursor_get, c.cursor_set,
                            use_start_notify=_start_notify(device))


def _sinocare(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return SinocareMeterSession(_tag(device), c.sinks, c.home_tz, use_start_notify=_start_notify(device))


def _bthome(device: DeviceSettings, c: _Context) -> AdvertSession:
    return BTHomeButtonSession(_tag(device), c.sinks, bytes.fromhex(device.bind_key) if device.bind_key else None)


def _xiaomi(device: DeviceSettings, c: _Context) -> AdvertSession:
    # xiaomi-ble (and the aiohttp it brings) is loaded only when such a device is configured.
    from drivers.ble.mibeacon_session import MiBeaconSession  # noqa: PLC0415

    return MiBeaconSession(_tag(device), c.sinks, bytes.fromhex(device.bind_key) if device.bind_key else None)


def _and(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return MeasurementSession(_tag(device), c.sinks, c.home_tz, [BLOOD_PRESSURE_MEASUREMENT],
                              use_start_notify=_start_notify(device), prepare=AndCuffPreparation(device.id, c.home_tz))


def _viatom(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return ViatomOximeterSession(_tag(device), c.sinks, use_start_notify=_start_notify(device))


def _o2ring(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return O2RingSession(_tag(device), c.sinks, c.home_tz, use_start_notify=_start_notify(device))


def _ichoice(device: DeviceSettings, c: _Context) -> ConnectedSession:
    return IChoiceOximeterSession(_tag(device), c.sinks, use_start_notify=_start_notify(device))


def _connects(spec: DriverSpec) -> bool:
    return spec.transport is Transport.BLE and not spec.advertisements_only


def _listens(spec: DriverSpec) -> bool:
    return spec.transport is Transport.BLE and spec.advertisements_only


CONNECTED_SESSIONS: Mapping[str, Callable[[DeviceSettings, _Context], ConnectedSession]] = {
    "ble-bps": _bps,
    "ble-gls": _gls,
    "ble-plx": _plx,
    "ble-hts": _hts,
    "microbit-accel": _microbit,
    "thingy-motion": _thingy,
    "omron-bp": _omron,
    "sinocare-glucose": _sinocare,
    "and-bp": _and,
    "viatom-oximeter": _viatom,
    "o2ring": _o2ring,
    "ichoice-oximeter": _ichoice,
}
ADVERT_SESSIONS: Mapping[str, Callable[[DeviceSettings, _Context], AdvertSession]] = {
    "bthome-button": _bthome,
    "xiaomi-mibeacon": _xiaomi,
}
check_served("BLE connected-session factories (gateway.ble_wiring.CONNECTED_SESSIONS)", CONNECTED_SESSIONS, _connects)
check_served("BLE advertisement-session factories (gateway.ble_wiring.ADVERT_SESSIONS)", ADVERT_SESSIONS, _listens)


class BleDevices:
    """The configured BLE devices' sessions, and the manager that serves them while :meth:`run` runs."""

    def __init__(
        self,
        devices: Sequence[DeviceSettings],
        *,
        clock: Clock,
        tz: tzinfo,
        on_readings: Callable[[Sequence[Reading]], Awaitable[None]],
        on_motion: Callable[[MotionBlock], Awaitable[None]],
        on_event: Callable[[DeviceEvent], Awaitable[None]],
        cursor_get: CursorGet,
        cursor_set: CursorSet,
        report_error: Callable[[str, str], None],
    ) -> None:
        """Sessions for the BLE devices among ``devices`` (others are ignored)."""
        sinks = Sinks(on_readings=on_readings, on_motion=on_motion, on_event=on_event)
        context = _Context(sinks, tz, cursor_get, cursor_set)
        self._clock = clock
        self._report_error = report_error
        self._connected = [CONNECTED_SESSIONS[d.driver](d, context) for d in devices if _connects(d.spec)]
        self._advertised = [ADVERT_SESSIONS[d.driver](d, context) for d in devices if _listens(d.spec)]
        self.tap = AdvertTap()
        self._manager: BleManager | None = None

    @property
    def sessions(self) -> dict[str, ConnectedSession | AdvertSession]:
        """Every session by device id."""
        sessions: dict[str, ConnectedSession | AdvertSession] = {s.tag.device_id: s for s in self._connected}
        sessions.update({s.tag.device_id: s for s in self._advertised})
        return sessions

    def scanning(self) -> bool:
        """Whether the manager's scanner runs now (it stops while the adapter is power-cycled)."""
        return self._manager is not None and self._manager.status.scanning

    async def run(self) -> None:
        """Run every configured BLE device until cancelled (the daemon starts it when any is configured)."""
        manager = BleManager(
            self._connected,
            self._advertised,
            clock=self._clock,
            on_adapter_trouble=lambda message: self._report_error(STATUS_COMPONENT, message),
            on_any_advert=self.tap,
        )
        self._manager = manager
        log.info("BLE starting devices=%d", len(self.sessions))
        try:
            await manager.run()
        finally:
            self._manager = None
