"""Health Thermometer: Temperature Measurement (0x2A1C).

Layout: flags u8 (bit 0 Fahrenheit, bit 1 timestamp, bit 2 temperature type); temperature
FLOAT; [Date Time]; [temperature type u8: where on the body it was measured].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from drivers.ble.datetime_char import DATE_TIME, BleDateTime, measurement_time
from drivers.ble.ieee11073 import FLOAT, UINT8, FieldSpec, MderFloat, read_fields, read_flags, require_some_number
from drivers.errors import CodecError
from drivers.model import BodyTemperature, DeviceInfo, HubTime, Reading

CHARACTERISTIC = "Temperature Measurement"

FLAG_FAHRENHEIT = 0x01
FLAG_TIMESTAMP = 0x02
FLAG_TEMPERATURE_TYPE = 0x04

_LAYOUT = (
    FieldSpec("temperature", FLOAT),
    FieldSpec("timestamp", DATE_TIME, FLAG_TIMESTAMP),
    FieldSpec("temperature_type", UINT8, FLAG_TEMPERATURE_TYPE),
)


class TemperatureSite(StrEnum):
    """Temperature Type (0x2A1D) values: where the thermometer measured."""

    ARMPIT = "armpit"
    BODY = "body"
    EAR = "ear"
    FINGER = "finger"
    GASTROINTESTINAL_TRACT = "gastrointestinal_tract"
    MOUTH = "mouth"
    RECTUM = "rectum"
    TOE = "toe"
    TYMPANUM = "tympanum"


_SITES: dict[int, TemperatureSite] = dict(enumerate(TemperatureSite, start=1))


class TemperatureUnit(StrEnum):
    CELSIUS = "Cel"
    FAHRENHEIT = "[degF]"


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """One body temperature in °C, whatever unit the thermometer used."""

    celsius: float
    unit_sent: TemperatureUnit
    timestamp: BleDateTime | None = None
    site: TemperatureSite | None = None


def decode_temperature_measurement(data: bytes) -> TemperatureMeasurement:
    """Decode a Temperature Measurement (0x2A1C) value."""
    flags = read_flags(data, CHARACTERISTIC)
    fields, _ = read_fields(data, 1, flags, _LAYOUT, CHARACTERISTIC)
    require_some_number(CHARACTERISTIC, {"temperature": fields.get("temperature", MderFloat)})
    temperature = fields.require("temperature", MderFloat).require("temperature")
    unit = TemperatureUnit.FAHRENHEIT if flags & FLAG_FAHRENHEIT else TemperatureUnit.CELSIUS
    if unit is TemperatureUnit.FAHRENHEIT:
        temperature = (temperature - 32.0) * 5.0 / 9.0
    site_code = fields.get("temperature_type", int)
    site = None
    if site_code is not None:
        site = _SITES.get(site_code)
        if site is None:
            raise CodecError(f"{CHARACTERISTIC}: temperature type {site_code} is reserved (expected 1-9)")
    return TemperatureMeasurement(
        # Thermometers resolve 0.01 °C at best; rounding hides the °F conversion's float noise.
        celsius=round(temperature, 2),
        unit_sent=unit,
        timestamp=fields.get("timestamp", BleDateTime),
        site=site,
    )


def temperature_reading(
    measurement: TemperatureMeasurement,
    *,
    device: DeviceInfo,
    resident_id: str,
    received: HubTime,
    clock_offset: timedelta | None,
) -> Reading:
    """Turn a decoded measurement into a :class:`Reading`."""
    device_time = measurement.timestamp.to_datetime() if measurement.timestamp else None
    measured_at, time_source = measurement_time(device_time, received, clock_offset)
    source_key = None
    if device_time is not None:
        source_key = f"hts:{device_time.isoformat()}:{measurement.celsius:g}"
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=BodyTemperature(
            celsius=measurement.celsius, site=measurement.site.value if measurement.site else None
        ),
        measured_at=measured_at,
        time_source=time_source,
        received=received,
        device_time=device_time,
        source_key=source_key,
    )
