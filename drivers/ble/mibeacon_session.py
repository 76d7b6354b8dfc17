"""A Xiaomi MiBeacon body thermometer: every reading is in an advertisement, no connection.

Imported only when such a device is configured (gateway.ble_wiring): xiaomi-ble brings aiohttp
and its cloud client with it, which a hub without a Xiaomi device should not carry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from drivers.ble.mibeacon import MiBeaconDecoder, MiBeaconError, MiBeaconReading
from drivers.ble.policy import ConnectionStyle
from drivers.ble.sessions import CodecComplaints, DeviceTag, Sinks
from drivers.ble.uuids import MIBEACON_SERVICE_DATA
from drivers.model import BodyTemperature, DeviceEventKind, HubTime, Reading, TimeSource

log = logging.getLogger(__name__)

READING_EVERY_S = 60.0
"""A worn thermometer (the T201 patch) advertises every few seconds while worn: one reading a minute
follows a fever as closely as anyone acts on it, without a platform record per advertisement."""

NOT_WORN_BELOW_C = 32.0
"""A wearable thermometer off the body reads the room. Below 32 °C no one at home is measured (the
hypothermia alarm is at 35 °C by default); such a value is taken for "not worn", not a reading."""


class MiBeaconSession:
    """One configured MiBeacon device, fed the advertisements the manager hears from it."""

    style = ConnectionStyle.ADVERT_ONLY

    def __init__(
        self, tag: DeviceTag, sinks: Sinks, bind_key: bytes | None, *, reading_every_s: float = READING_EVERY_S
    ) -> None:
        self.tag = tag
        self._sinks = sinks
        self._decoder = MiBeaconDecoder(bind_key)
        self._complain = CodecComplaints(tag.device_id)
        self._reading_every_s = reading_every_s
        self._last_reading_at: float | None = None
        self._battery: int | None = None

    async def on_advert(self, service_data: Mapping[str, bytes], received: HubTime) -> None:
        data = service_data.get(MIBEACON_SERVICE_DATA)
        if data is None:
            return
        try:
            advert = self._decoder.decode(self.tag.address, data, received.monotonic)
        except MiBeaconError as exc:
            self._complain("MiBeacon", exc)
            return
        if advert is None:
            return
        if advert.battery_percent is not None and advert.battery_percent != self._battery:
            self._battery = advert.battery_percent
            await self._sinks.on_event(self.tag.event(DeviceEventKind.BATTERY, received, advert.battery_percent))
        reading = self._reading(advert, received)
        if reading is not None:
            await self._sinks.on_readings([reading])

    def _reading(self, advert: MiBeaconReading, received: HubTime) -> Reading | None:
        celsius = advert.body_temperature_c
        if celsius is None:
            return None
        if celsius < NOT_WORN_BELOW_C:
            log.debug("thermometer not worn device=%s", self.tag.device_id)
            return None
        last = self._last_reading_at
        if last is not None and received.monotonic - last < self._reading_every_s:
            return None
        self._last_reading_at = received.monotonic
        return Reading(
            device=self.tag.info,
            resident_id=self.tag.resident_id,
            measurement=BodyTemperature(celsius=celsius),
            # The advertisement carries no time: it is sent as the thermometer measures.
            measured_at=received.wall,
            time_source=TimeSource.HUB if received.synced else TimeSource.HUB_UNSYNCED,
            received=received,
        )
