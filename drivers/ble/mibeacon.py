"""Xiaomi MiBeacon advertisements (service data 0xFE95): a thin adapter over ``xiaomi-ble``.

The MiBeacon format, its AES-CCM encryption (MiBeacon v4/v5, the device's 16-byte bind key) and
the meaning of each object are the library's (Bluetooth-Devices/xiaomi-ble, which Home Assistant
uses); this module reads only the frame header the library needs no help with (product id, frame
counter, whether it is encrypted), feeds it one advertisement and keeps what a health gateway
takes from it.

What xiaomi-ble decodes that is a health reading here (its ``devices.py`` and ``parser.py``):

- MMC-W505 body thermometer (product 0x0391): object 0x000A, body temperature in 0.01 °C;
- MMC-T201-1 baby thermometer (product 0x00DB): object 0x2000, two sensor temperatures the
  library turns into a body temperature (its own fitted formula), and the battery.

It does not know the Mijia BPX1 blood pressure monitor (made by iHealth): no product id of it is
in the library's table, and the library drops the advert of a product it does not know before
decrypting it. A BPX1 bound to this driver is heard, and said once to be undecodable; its
readings need a decoder for its object, which nobody has published. The scales the library
knows (weight, impedance, a heart rate from the S400) and its room thermometers are not readings
this gateway takes: they are refused as such, so an ambient 36 °C is never a body temperature.

A device repeats each advertisement several times with one frame counter; a new measurement
comes with a new one. Keep one :class:`MiBeaconDecoder` per device for as long as it is known.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from sensor_state_data import DeviceKey
from xiaomi_ble import EncryptionScheme, XiaomiBluetoothDeviceData

from drivers.ble.ha_advert import service_data_info
from drivers.ble.uuids import MIBEACON_SERVICE_DATA
from drivers.errors import CodecError

# xiaomi-ble logs every advert it cannot use (an unknown product, a key that does not fit) at
# info or warning: several a second from one misconfigured device. The session says it once.
logging.getLogger("xiaomi_ble").setLevel(logging.ERROR)

_HEADER_SIZE = 5  # frame control u16, product id u16, frame counter u8
_FRAME_ENCRYPTED = 0x0008
_FRAME_OBJECT_INCLUDED = 0x0040
_FRAME_MESH = 0x0080
_VERSION_SHIFT = 12
_MIN_VERSION = 2  # the library reads MiBeacon v2 to v5

BODY_THERMOMETERS: dict[str, str] = {
    "MMC-W505": "Miaomiaoce body thermometer",
    "MMC-T201-1": "Miaomiaoce baby thermometer",
}
"""xiaomi-ble models whose temperature is a person's: the only readings this driver takes."""

_TEMPERATURE = DeviceKey(key="temperature", device_id=None)
_BATTERY = DeviceKey(key="battery", device_id=None)


class MiBeaconError(CodecError):
    """A MiBeacon advertisement that gives no reading: not MiBeacon, or a key that does not fit."""


class UnknownProductError(MiBeaconError):
    """xiaomi-ble does not know the product (the BPX1 is one): nothing in its adverts can be read."""

    def __init__(self, address: str, product_id: int) -> None:
        super().__init__(
            f"MiBeacon {address}: product 0x{product_id:04x} is not one xiaomi-ble decodes (the Mijia BPX1 "
            "cuff is not); no readings will come from it: bind a device this driver covers "
            f"({', '.join(BODY_THERMOMETERS)})"
        )
        self.product_id = product_id


class NotAHealthDeviceError(MiBeaconError):
    """A product xiaomi-ble decodes, but whose values are no reading of a person (a room thermometer)."""

    def __init__(self, address: str, model: str) -> None:
        super().__init__(
            f"MiBeacon {address}: {model} is not a health device (its temperature is the room's); "
            f"this driver takes readings from {', '.join(BODY_THERMOMETERS)} only"
        )
        self.model = model


@dataclass(frozen=True, slots=True)
class MiBeaconHeader:
    """The part of a MiBeacon frame every version shares."""

    frame_control: int
    product_id: int
    frame_counter: int

    @property
    def version(self) -> int:
        return self.frame_control >> _VERSION_SHIFT

    @property
    def encrypted(self) -> bool:
        return bool(self.frame_control & _FRAME_ENCRYPTED)

    @property
    def has_object(self) -> bool:
        return bool(self.frame_control & _FRAME_OBJECT_INCLUDED)


def decode_header(address: str, service_data: bytes) -> MiBeaconHeader:
    """The frame header of 0xFE95 service data, or MiBeaconError when it is none the library reads."""
    if len(service_data) < _HEADER_SIZE:
        raise MiBeaconError(f"MiBeacon {address}: {len(service_data)} bytes, shorter than a frame header")
    header = MiBeaconHeader(
        frame_control=int.from_bytes(service_data[0:2], "little"),
        product_id=int.from_bytes(service_data[2:4], "little"),
        frame_counter=service_data[4],
    )
    if header.frame_control & _FRAME_MESH:
        raise MiBeaconError(f"MiBeacon {address}: a mesh device's frame, which xiaomi-ble does not read")
    if header.version < _MIN_VERSION:
        raise MiBeaconError(f"MiBeacon {address}: version {header.version} frame; xiaomi-ble reads 2 to 5")
    return header


@dataclass(frozen=True, slots=True)
class MiBeaconReading:
    """What one new (not repeated) advertisement of a body thermometer said."""

    address: str
    model: str
    frame_counter: int
    body_temperature_c: float | None = None
    battery_percent: int | None = None
    encrypted: bool = False


class MiBeaconDecoder:
    """Decodes one device's MiBeacon advertisements; remembers only the last frame counter."""

    def __init__(self, bind_key: bytes | None = None) -> None:
        if bind_key is not None and len(bind_key) != 16:
            raise ValueError(f"a MiBeacon bind key is 16 bytes (32 hex digits), got {len(bind_key)} bytes")
        self._bind_key = bind_key
        self._last: tuple[int, int] | None = None

    def decode(self, address: str, service_data: bytes, advertised_at: float) -> MiBeaconReading | None:
        """Decode the 0xFE95 service data of one advertisement seen at ``advertised_at`` (monotonic s).

        None for a repeat of the last frame, or a frame that carries no object (a device saying it
        is there). Raises MiBeaconError (or a subclass) for anything that cannot give a reading.
        """
        header = decode_header(address, service_data)
        frame = (header.product_id, header.frame_counter)
        if not header.has_object or frame == self._last:
            return None
        # A fresh parser each time: the library keeps every value it ever decoded and hands the old
        # ones out again, so a battery-only frame would repeat the last temperature.
        parser = XiaomiBluetoothDeviceData(bindkey=self._bind_key)
        try:
            update = parser.update(service_data_info(address, MIBEACON_SERVICE_DATA, service_data, advertised_at))
        except (IndexError, ValueError, struct.error) as exc:  # the library checks most lengths, not all
            raise MiBeaconError(f"MiBeacon {address}: malformed frame ({exc})") from exc
        # Set by the library only for a product it knows.
        model: str | None = getattr(parser, "device_type", None)
        if model is None or getattr(parser, "device_id", None) != header.product_id:
            raise UnknownProductError(address, header.product_id)
        if header.encrypted and parser.encryption_scheme is not EncryptionScheme.NONE and not parser.bindkey_verified:
            raise MiBeaconError(
                f"MiBeacon {address}: encrypted advert that the configured bind key does not decrypt; "
                "check bind_key (the 32-hex-digit key Mi Home gave this device)"
            )
        if model not in BODY_THERMOMETERS:
            raise NotAHealthDeviceError(address, model)
        self._last = frame
        temperature = update.entity_values.get(_TEMPERATURE)
        battery = update.entity_values.get(_BATTERY)
        return MiBeaconReading(
            address=address,
            model=model,
            frame_counter=header.frame_counter,
            body_temperature_c=_number(temperature.native_value) if temperature else None,
            battery_percent=_percent(battery.native_value) if battery else None,
            encrypted=header.encrypted,
        )


def _number(value: object) -> float | None:
    # Two decimals: the W505 reports 0.01 °C; the T201's formula gives more digits than it measures.
    return round(float(value), 2) if isinstance(value, int | float) else None


def _percent(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and 0 <= value <= 100 else None
