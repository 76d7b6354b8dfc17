"""Profile sessions for measuring devices: blood pressure, thermometer, pulse oximeter, BTHome button.

A session is handed a connected :class:`GattLink` by the manager, subscribes, turns values into
records through the pure codecs and hands them to the injected sinks. The glucose meter
(RACP download with a cursor) and the motion wearables have their own modules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from typing import Protocol

from drivers.ble.bps import blood_pressure_reading, decode_blood_pressure_measurement
from drivers.ble.bthome import BTHomeDecoder, device_events
from drivers.ble.hts import decode_temperature_measurement, temperature_reading
from drivers.ble.ieee11073 import NoMeasurementError
from drivers.ble.link import GattLink, check_device_clock, read_battery_percent
from drivers.ble.plx import decode_continuous, decode_spot_check, spot_check_reading
from drivers.ble.policy import ConnectionStyle
from drivers.ble.streams import SpO2Window, spo2_summary_reading
from drivers.ble.uuids import (
    BLOOD_PRESSURE_MEASUREMENT,
    BTHOME_SERVICE_DATA,
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_SPOT_CHECK_MEASUREMENT,
    TEMPERATURE_MEASUREMENT,
    GattCharacteristic,
)
from drivers.ble.warn_once import WarnOnce
from drivers.errors import CodecError, DeviceUnavailableError
from drivers.model import (
    DeviceEvent,
    DeviceEventKind,
    DeviceInfo,
    HubTime,
    MotionBlock,
    Reading,
)

log = logging.getLogger(__name__)

MEASUREMENT_FAILED = "measurement_failed"
"""The device error a measurement of nothing but NaN is reported as (drivers.ble.ieee11073.NoMeasurementError)."""


@dataclass(frozen=True, slots=True)
class Sinks:
    """Where records go. Each returns after the record is durably accepted (committed)."""

    on_readings: Callable[[Sequence[Reading]], Awaitable[None]]
    on_motion: Callable[[MotionBlock], Awaitable[None]]
    on_event: Callable[[DeviceEvent], Awaitable[None]]


CursorGet = Callable[[str], Awaitable[str | None]]
"""Reads one of the small named values a driver keeps at the hub (the outbox's cursors): a glucose
meter's download cursor, an Omron cuff's key. None when it was never set."""
CursorSet = Callable[[str, str], Awaitable[None]]
"""Keeps one of those values; returns once it is durably written."""


@dataclass(frozen=True, slots=True)
class DeviceTag:
    """Who a configured BLE device is on this hub."""

    device_id: str
    resident_id: str
    address: str
    model: str

    @property
    def info(self) -> DeviceInfo:
        return DeviceInfo(id=self.device_id, transport="ble", model=self.model)

    def event(self, kind: DeviceEventKind, received: HubTime, value: int | str | None = None) -> DeviceEvent:
        return DeviceEvent(
            device_id=self.device_id, resident_id=self.resident_id, kind=kind, received=received, value=value
        )


class ConnectedSession(Protocol):
    """A session that needs a connection (the manager connects, runs it, disconnects)."""

    tag: DeviceTag
    style: ConnectionStyle
    use_start_notify: bool

    async def run(self, link: GattLink) -> None: ...


class AdvertSession(Protocol):
    """A session fed by advertisements only."""

    tag: DeviceTag
    style: ConnectionStyle

    async def on_advert(self, service_data: Mapping[str, bytes], received: HubTime) -> None: ...


class CodecComplaints:
    """Logs a device's undecodable values: the first at warning, repeats at debug.

    A device with broken firmware would otherwise fill the log with one line per notification.
    """

    def __init__(self, device_id: str) -> None:
        self._device_id = device_id
        self._once = WarnOnce(log)

    def __call__(self, characteristic: str, exc: CodecError) -> None:
        self._once(characteristic, "undecodable value device=%s characteristic=%s reason=%s", self._device_id,
                   characteristic, exc)


async def on_connected(link: GattLink, tag: DeviceTag, sinks: Sinks, home_tz: tzinfo) -> timedelta | None:
    """What every measuring device gets on connect: battery event, clock check. Returns the clock offset."""
    battery = await read_battery_percent(link)
    if battery is not None:
        await sinks.on_event(tag.event(DeviceEventKind.BATTERY, link.clock.now(), battery))
    clock = await check_device_clock(link, home_tz)
    return clock.offset if clock is not None else None


# A decoded measurement becomes a Reading the same way for every indicated SIG profile.
ToReading = Callable[[bytes, DeviceInfo, str, HubTime, "timedelta | None"], Reading]


def _blood_pressure(
    data: bytes, device: DeviceInfo, resident: str, received: HubTime, offset: timedelta | None
) -> Reading:
    return blood_pressure_reading(
        decode_blood_pressure_measurement(data),
        device=device,
        resident_id=resident,
        received=received,
        clock_offset=offset,
    )


def _temperature(
    data: bytes, device: DeviceInfo, resident: str, received: HubTime, offset: timedelta | None
) -> Reading:
    return temperature_reading(
        decode_temperature_measurement(data),
        device=device,
        resident_id=resident,
        received=received,
        clock_offset=offset,
    )


def _spot_check(data: bytes, device: DeviceInfo, resident: str, received: HubTime, offset: timedelta | None) -> Reading:
    return spot_check_reading(
        decode_spot_check(data), device=device, resident_id=resident, received=received, clock_offset=offset
    )


MEASUREMENTS: dict[str, ToReading] = {
    BLOOD_PRESSURE_MEASUREMENT.uuid: _blood_pressure,
    TEMPERATURE_MEASUREMENT.uuid: _temperature,
    PLX_SPOT_CHECK_MEASUREMENT.uuid: _spot_check,
}
"""Indicated measurement characteristic -> how its value becomes a Reading."""


class MeasurementSession:
    """Blood pressure cuff, thermometer or oximeter: take what it sends until it hangs up.

    Cuffs and thermometers indicate their new (and often their stored) measurements right after
    the connection and then disconnect; some stay connected, so ``idle_timeout_s`` of silence
    ends the session too. Readings are handed over together when it ends: one commit per visit.
    A continuous oximeter stream is reduced to one median reading per ``spo2_interval_s``,
    handed over as each window closes, since someone may be watching it overnight.
    """

    style = ConnectionStyle.ON_ADVERT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        home_tz: tzinfo,
        measurements: Sequence[GattCharacteristic],
        *,
        continuous_spo2: bool = False,
        idle_timeout_s: float = 10.0,
        spo2_interval_s: float = 10.0,
        use_start_notify: bool = True,
        prepare: Callable[[GattLink], Awaitable[None]] | None = None,
    ) -> None:
        """``prepare`` runs after the clock check and before the indications are enabled: what a
        vendor's cuff must be told first (drivers.ble.and_bp)."""
        unknown = [m.name for m in measurements if m.uuid not in MEASUREMENTS]
        if unknown:
            raise ValueError(f"no decoder for {', '.join(unknown)}")
        self.tag = tag
        self.use_start_notify = use_start_notify
        self._sinks = sinks
        self._home_tz = home_tz
        self._measurements = tuple(measurements)
        self._continuous_spo2 = continuous_spo2
        self._idle_timeout_s = idle_timeout_s
        self._spo2_interval_s = spo2_interval_s
        self._complain = CodecComplaints(tag.device_id)
        self._prepare = prepare

    async def run(self, link: GattLink) -> None:
        offset = await on_connected(link, self.tag, self._sinks, self._home_tz)
        if self._prepare is not None:
            await self._prepare(link)
        subscribed = [m for m in self._measurements if link.offers(m)]
        window = None
        if self._continuous_spo2 and link.offers(PLX_CONTINUOUS_MEASUREMENT):
            subscribed.append(PLX_CONTINUOUS_MEASUREMENT)
            window = SpO2Window(self._spo2_interval_s)
        if not subscribed:
            raise DeviceUnavailableError(
                f"{self.tag.device_id}: offers none of {', '.join(m.name for m in self._measurements)}; "
                "is the configured driver right for this device?"
            )
        for characteristic in subscribed:
            await link.subscribe(characteristic)
        readings: list[Reading] = []
        try:
            while (value := await link.receive(self._idle_timeout_s)) is not None:
                if value.uuid == PLX_CONTINUOUS_MEASUREMENT.uuid and window is not None:
                    await self._continuous(value.data, value.received, window)
                    continue
                try:
                    readings.append(
                        MEASUREMENTS[value.uuid](
                            value.data, self.tag.info, self.tag.resident_id, value.received, offset
                        )
                    )
                except NoMeasurementError as exc:
                    self._complain(value.uuid, exc)
                    await self._sinks.on_event(DeviceEvent(
                        device_id=self.tag.device_id, resident_id=self.tag.resident_id,
                        kind=DeviceEventKind.DEVICE_ERROR, received=value.received, value=MEASUREMENT_FAILED,
                        detail=str(exc)))
                except CodecError as exc:
                    self._complain(value.uuid, exc)
        finally:
            if window is not None and (summary := window.flush()) is not None:
                readings.append(spo2_summary_reading(summary, self.tag.info, self.tag.resident_id, last=True))
            if readings:
                await self._sinks.on_readings(readings)
                log.info("readings received device=%s count=%d", self.tag.device_id, len(readings))

    async def _continuous(self, data: bytes, received: HubTime, window: SpO2Window) -> None:
        try:
            sample = decode_continuous(data)
        except CodecError as exc:
            self._complain(PLX_CONTINUOUS_MEASUREMENT.uuid, exc)
            return
        summary = window.add(sample, received)
        if summary is not None:
            await self._sinks.on_readings([spo2_summary_reading(summary, self.tag.info, self.tag.resident_id)])


class BTHomeButtonSession:
    """An SOS button speaking BTHome v2: every press is in an advertisement, no connection."""

    style = ConnectionStyle.ADVERT_ONLY

    def __init__(self, tag: DeviceTag, sinks: Sinks, bind_key: bytes | None = None) -> None:
        self.tag = tag
        self._sinks = sinks
        # One decoder for the device's lifetime: it drops the repeats of each advertisement.
        self._decoder = BTHomeDecoder(bind_key)
        self._complain = CodecComplaints(tag.device_id)

    async def on_advert(self, service_data: Mapping[str, bytes], received: HubTime) -> None:
        data = service_data.get(BTHOME_SERVICE_DATA)
        if data is None:
            return
        try:
            advert = self._decoder.decode(self.tag.address, data, received.monotonic)
        except CodecError as exc:
            self._complain("BTHome", exc)
            return
        if advert is None:
            return
        for event in device_events(
            advert, device_id=self.tag.device_id, resident_id=self.tag.resident_id, received=received
        ):
            await self._sinks.on_event(event)
