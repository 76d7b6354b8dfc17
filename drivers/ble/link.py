"""A connected device as the profile sessions see it: one queue of notifications, reads, writes.

Every subscribed characteristic feeds one queue in arrival order, because the Glucose Profile
pairs a measurement with the context that follows it on another characteristic. Each item is
stamped with hub time when bleak hands it over, the only timestamp wearables ever get.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import tzinfo

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

from drivers.ble.datetime_char import decode_date_time
from drivers.ble.device_clock import (
    DeviceClock,
    decode_current_time,
    encode_current_time,
    home_local_time,
    read_device_clock,
)
from drivers.ble.uuids import BATTERY_LEVEL, CURRENT_TIME, DATE_TIME, GattCharacteristic
from drivers.clock import Clock
from drivers.errors import CodecError, DeviceUnavailableError
from drivers.model import HubTime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Notification:
    uuid: str
    data: bytes
    received: HubTime


class GattLink:
    """One live connection. The manager creates it after connecting and disconnects it after."""

    def __init__(
        self,
        client: BleakClient,
        *,
        device_id: str,
        clock: Clock,
        disconnected: asyncio.Event,
        use_start_notify: bool = True,
    ) -> None:
        self.client = client
        self.device_id = device_id
        self.clock = clock
        self.disconnected = disconnected
        self._use_start_notify = use_start_notify
        self._queue: asyncio.Queue[Notification] = asyncio.Queue()

    def offers(self, characteristic: GattCharacteristic, *properties: str) -> bool:
        """Whether the device has this characteristic (with all of ``properties``, e.g. "write")."""
        found = self.client.services.get_characteristic(characteristic.uuid)
        return found is not None and all(p in found.properties for p in properties)

    async def read(self, characteristic: GattCharacteristic) -> bytes:
        return bytes(await self.client.read_gatt_char(characteristic.uuid))

    async def write(self, characteristic: GattCharacteristic, data: bytes, *, response: bool = True) -> None:
        await self.client.write_gatt_char(characteristic.uuid, data, response=response)

    async def subscribe(self, characteristic: GattCharacteristic) -> None:
        """Enable notifications or indications; values then arrive through :meth:`receive`."""

        def on_value(_: BleakGATTCharacteristic, data: bytearray) -> None:
            self._queue.put_nowait(Notification(characteristic.uuid, bytes(data), self.clock.now()))

        # StartNotify vs AcquireNotify is per device: AcquireNotify loses the first values of
        # fast devices, StartNotify is slower but complete (bleak's default since 3.0.2).
        await self.client.start_notify(
            characteristic.uuid, on_value, bluez={"use_start_notify": self._use_start_notify}
        )

    async def receive(self, timeout_s: float | None) -> Notification | None:
        """The next value, or None when the device disconnected or stayed silent for ``timeout_s``.

        Values that arrived before a disconnect are still handed out first.
        """
        if not self._queue.empty():
            return self._queue.get_nowait()
        if self.disconnected.is_set():
            return None
        getter = asyncio.ensure_future(self._queue.get())
        gone = asyncio.ensure_future(self.disconnected.wait())
        try:
            await asyncio.wait((getter, gone), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    @property
    def connected(self) -> bool:
        return not self.disconnected.is_set() and self.client.is_connected


async def read_battery_percent(link: GattLink) -> int | None:
    """Battery Level (0x2A19) where the device offers it; None otherwise or when it is garbage."""
    if not link.offers(BATTERY_LEVEL, "read"):
        return None
    data = await link.read(BATTERY_LEVEL)
    if len(data) != 1 or data[0] > 100:
        log.warning("battery level unreadable device=%s length=%d", link.device_id, len(data))
        return None
    return data[0]


async def check_device_clock(link: GattLink, home_tz: tzinfo) -> DeviceClock | None:
    """Read the device clock (Current Time, else Date Time) and reset it when it is off.

    The returned offset belongs to the clock as it was: records the device sends in this session
    were stamped by that clock, even when it is corrected here for the next ones.
    """
    try:
        if link.offers(CURRENT_TIME, "read"):
            device_time = decode_current_time(await link.read(CURRENT_TIME)).date_time
        elif link.offers(DATE_TIME, "read"):
            device_time = decode_date_time(await link.read(DATE_TIME))
        else:
            return None
    except CodecError as exc:
        log.warning("device clock unreadable device=%s reason=%s", link.device_id, exc)
        return None
    now = link.clock.now()
    clock = read_device_clock(device_time, now, home_tz)
    if clock.needs_setting and link.offers(CURRENT_TIME, "write"):
        # Only a synced hub gets here (needs_setting needs a drift, which needs a synced hub).
        with contextlib.suppress(BleakError):
            await link.write(CURRENT_TIME, encode_current_time(home_local_time(now, home_tz)))
            log.info(
                "device clock reset device=%s drift_s=%.0f",
                link.device_id,
                clock.drift.total_seconds() if clock.drift else 0.0,
            )
    return clock


def require(link: GattLink, characteristic: GattCharacteristic) -> None:
    """Fail clearly when the device lacks a characteristic its profile needs."""
    if not link.offers(characteristic):
        raise DeviceUnavailableError(
            f"{link.device_id}: no {characteristic.name} ({characteristic.uuid}); is the configured "
            "driver right for this device, and is it paired?"
        )
