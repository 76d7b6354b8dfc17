"""A&D UA-651BLE (UA-651CNBLE in China): the Blood Pressure Service behind two writes of A&D's own.

The order that is known to work (obniz ``parts/Ble/UA651BLE``, after A&D's interface sheet): write
``02 00 E1`` to A&D's custom characteristic 233bf001-..., write the home's local time to Date Time
(0x2A08, in the Blood Pressure Service), then enable Blood Pressure Measurement (0x2A35)
indications. The cuff then indicates the readings it has not sent yet and hangs up, which
:class:`drivers.ble.sessions.MeasurementSession` already takes as the end of a visit.

The clock is read (where readable) before it is written, so the readings stored under the old clock
get the old clock's offset; what the cuff measures next is stamped by the time set here.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

from drivers.ble.datetime_char import encode_date_time
from drivers.ble.device_clock import home_local_time
from drivers.ble.link import GattLink
from drivers.ble.uuids import BLOOD_PRESSURE_SERVICE, GattCharacteristic, sig_uuid

log = logging.getLogger(__name__)

AND_CUSTOM_SERVICE = "233bf000-5a34-1b6d-975c-000d5690abe4"
AND_COMMAND = GattCharacteristic("A&D command", "233bf001-5a34-1b6d-975c-000d5690abe4", AND_CUSTOM_SERVICE)
BPS_DATE_TIME = GattCharacteristic("Date Time", sig_uuid(0x2A08), BLOOD_PRESSURE_SERVICE)
SEND_READINGS = bytes([0x02, 0x00, 0xE1])
"""A&D's command before the indications are enabled ("send the data", as obniz has it)."""


class AndCuffPreparation:
    """What an A&D cuff is told between connecting and enabling its indications."""

    def __init__(self, device_id: str, home_tz: tzinfo) -> None:
        self._device_id = device_id
        self._home_tz = home_tz
        self._told_missing: set[str] = set()

    async def __call__(self, link: GattLink) -> None:
        if self._offers(link, AND_COMMAND):
            await link.write(AND_COMMAND, SEND_READINGS, response=True)
        if self._offers(link, BPS_DATE_TIME):
            await link.write(BPS_DATE_TIME, encode_date_time(home_local_time(link.clock.now(), self._home_tz)))

    def _offers(self, link: GattLink, characteristic: GattCharacteristic) -> bool:
        if link.offers(characteristic, "write"):
            return True
        # A UA-651 variant without it would differ from the known facts: say so once, carry on with
        # the standard profile (the indications may still come).
        if characteristic.uuid not in self._told_missing:
            self._told_missing.add(characteristic.uuid)
            log.warning("A&D cuff without a writable %s device=%s; going on with the Blood Pressure Service alone",
                        characteristic.name, self._device_id)
        return False
