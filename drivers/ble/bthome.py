"""BTHome v2 buttons (Shelly BLU Button and others): a thin adapter over ``bthome-ble``.

The BTHome format, its encryption and its duplicate filtering are the library's; this module
only feeds it one advertisement's service data (UUID 0xFCD2) and maps what comes out to a
small frozen record and :class:`drivers.model.DeviceEvent` values. Buttons repeat each
advertisement several times with one packet id: the library drops the repeats, so keep one
:class:`BTHomeDecoder` per device for as long as the device is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from bthome_ble import BTHomeBluetoothDeviceData, DeviceKey
from bthome_ble.parser import BTHomeVersion, EncryptionScheme

from drivers.ble.ha_advert import service_data_info
from drivers.ble.uuids import BTHOME_SERVICE_DATA
from drivers.errors import CodecError
from drivers.model import DeviceEvent, DeviceEventKind, HubTime

# bthome-ble event types -> the press names DeviceEventKind.BUTTON_PRESS documents.
_PRESSES: dict[str, str] = {
    "press": "single",
    "double_press": "double",
    "triple_press": "triple",
    "long_press": "long",
    "long_double_press": "long_double",
    "long_triple_press": "long_triple",
    "hold_press": "hold",
    "hold_release": "release",
}
_BUTTON_KEY = "button"
_BATTERY_KEY = DeviceKey(key="battery", device_id=None)
_PACKET_ID_KEY = DeviceKey(key="packet_id", device_id=None)


@dataclass(frozen=True, slots=True)
class ButtonPress:
    button: int
    """1 for a single-button device; 1..n on multi-button remotes, in advertisement order."""
    press: str


@dataclass(frozen=True, slots=True)
class BTHomeAdvert:
    """What one new (not repeated) advertisement said."""

    address: str
    packet_id: int | None = None
    battery_percent: int | None = None
    """The latest battery level the device has reported (the library keeps the last value)."""
    presses: tuple[ButtonPress, ...] = ()


def _button_number(key: DeviceKey) -> int | None:
    # The library keys a lone button "button" and several "button_1", "button_2", ...
    if key.key == _BUTTON_KEY:
        return 1
    prefix = f"{_BUTTON_KEY}_"
    if key.key.startswith(prefix) and key.key[len(prefix) :].isdigit():
        return int(key.key[len(prefix) :])
    return None


class BTHomeDecoder:
    """Decodes one device's BTHome advertisements; stateful only as the library is (packet ids,
    encryption counter)."""

    def __init__(self, bind_key: bytes | None = None) -> None:
        if bind_key is not None and len(bind_key) != 16:
            raise ValueError(f"a BTHome bind key is 16 bytes (32 hex digits), got {len(bind_key)} bytes")
        self._device = BTHomeBluetoothDeviceData(bindkey=bind_key)

    def decode(self, address: str, service_data: bytes, advertised_at: float) -> BTHomeAdvert | None:
        """Decode the 0xFCD2 service data of one advertisement seen at ``advertised_at`` (monotonic s).

        Returns None for a repeat of an advertisement already decoded. Raises CodecError for
        data that is not BTHome v2, or that the bind key cannot decrypt.
        """
        if not service_data:
            raise CodecError(f"BTHome {address}: empty service data")
        info = service_data_info(address, BTHOME_SERVICE_DATA, service_data, advertised_at)
        update = self._device.update(info)
        if self._device.bthome_version is not BTHomeVersion.V2:
            raise CodecError(
                f"BTHome {address}: not a BTHome v2 advertisement (adv info 0x{service_data[0]:02x}); "
                "set the device to BTHome v2"
            )
        if self._device.encryption_scheme is EncryptionScheme.BTHOME_BINDKEY and self._device.decryption_failed:
            raise CodecError(
                f"BTHome {address}: encrypted advert that the configured bind key "
                f"({'none' if self._device.bindkey is None else 'set'}) does not decrypt; check the key"
            )
        presses = tuple(
            ButtonPress(button=number, press=_PRESSES.get(event.event_type, event.event_type))
            for key, event in update.events.items()
            if (number := _button_number(key)) is not None
        )
        # The library only remembers an advert it parsed; a filtered repeat leaves the old one.
        if self._device.last_service_info is not info:
            return None
        battery = update.entity_values.get(_BATTERY_KEY)
        packet = update.entity_values.get(_PACKET_ID_KEY)
        return BTHomeAdvert(
            address=address,
            packet_id=_as_int(packet.native_value) if packet else None,
            battery_percent=_as_int(battery.native_value) if battery else None,
            presses=presses,
        )


def _as_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def device_events(advert: BTHomeAdvert, *, device_id: str, resident_id: str, received: HubTime) -> list[DeviceEvent]:
    """The button presses (and battery level) of an advert as device events."""
    events = [
        DeviceEvent(
            device_id=device_id,
            resident_id=resident_id,
            kind=DeviceEventKind.BUTTON_PRESS,
            received=received,
            value=press.press,
            extra={"button": press.button},
        )
        for press in advert.presses
    ]
    if advert.battery_percent is not None:
        events.append(
            DeviceEvent(
                device_id=device_id,
                resident_id=resident_id,
                kind=DeviceEventKind.BATTERY,
                received=received,
                value=advert.battery_percent,
            )
        )
    return events
