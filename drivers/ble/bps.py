"""Blood Pressure Service: Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Layout: flags u8; systolic, diastolic, mean arterial pressure (3 SFLOAT, mmHg or kPa by
flag bit 0); then, each when its flag bit is set, timestamp (Date Time), pulse rate (SFLOAT),
user id (u8, 0xFF = unknown user), measurement status (u16). Intermediate Cuff Pressure has
the same layout with the current cuff pressure in the systolic slot and NaN in the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from drivers.ble.datetime_char import DATE_TIME, BleDateTime, measurement_time
from drivers.ble.ieee11073 import (
    SFLOAT,
    UINT8,
    UINT16,
    Fields,
    FieldSpec,
    MderFloat,
    read_fields,
    read_flags,
    require_some_number,
)
from drivers.errors import CodecError
from drivers.model import BloodPressure, DeviceInfo, HubTime, Reading, ReadingFlag

MMHG_PER_KPA = 7.50062

FLAG_KPA = 0x01
FLAG_TIMESTAMP = 0x02
FLAG_PULSE_RATE = 0x04
FLAG_USER_ID = 0x08
FLAG_MEASUREMENT_STATUS = 0x10

UNKNOWN_USER = 0xFF

_LAYOUT = (
    FieldSpec("systolic", SFLOAT),
    FieldSpec("diastolic", SFLOAT),
    FieldSpec("mean_arterial", SFLOAT),
    FieldSpec("timestamp", DATE_TIME, FLAG_TIMESTAMP),
    FieldSpec("pulse_rate", SFLOAT, FLAG_PULSE_RATE),
    FieldSpec("user_id", UINT8, FLAG_USER_ID),
    FieldSpec("measurement_status", UINT16, FLAG_MEASUREMENT_STATUS),
)

# Measurement status single bits -> the reading flag they raise.
_STATUS_BITS: dict[int, ReadingFlag] = {
    0x0001: ReadingFlag.BODY_MOVEMENT,
    0x0002: ReadingFlag.CUFF_LOOSE,
    0x0004: ReadingFlag.IRREGULAR_PULSE,
    0x0020: ReadingFlag.IMPROPER_POSITION,
}
_PULSE_RANGE_SHIFT = 3
# Bits 3-4: 0 within range, 1 above the upper limit, 2 below the lower limit, 3 reserved.
_PULSE_RANGE: dict[int, ReadingFlag | None] = {
    0: None,
    1: ReadingFlag.PULSE_RATE_OUT_OF_RANGE,
    2: ReadingFlag.PULSE_RATE_OUT_OF_RANGE,
}


class PressureUnit(StrEnum):
    MMHG = "mmHg"
    KPA = "kPa"


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """One finished cuff measurement, pressures in mmHg whatever unit the cuff used."""

    systolic_mmhg: float
    diastolic_mmhg: float
    mean_arterial_mmhg: float | None
    unit_sent: PressureUnit
    timestamp: BleDateTime | None = None
    pulse_rate_bpm: float | None = None
    user_id: int | None = None
    """The cuff's user slot; None when absent or 0xFF (unknown user)."""
    flags: frozenset[ReadingFlag] = frozenset()


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    """The cuff pressure while inflating or deflating: for a "measuring..." display only."""

    cuff_pressure_mmhg: float
    unit_sent: PressureUnit
    timestamp: BleDateTime | None = None
    pulse_rate_bpm: float | None = None
    user_id: int | None = None
    flags: frozenset[ReadingFlag] = frozenset()


def _in_mmhg(pressure: float, unit: PressureUnit) -> float:
    if unit is PressureUnit.MMHG:
        return pressure
    # Cuffs show whole mmHg; one decimal keeps the kPa resolution without inventing precision.
    return round(pressure * MMHG_PER_KPA, 1)


def _status_flags(status: int | None, characteristic: str) -> frozenset[ReadingFlag]:
    if status is None:
        return frozenset()
    flags = {flag for bit, flag in _STATUS_BITS.items() if status & bit}
    pulse_range = (status >> _PULSE_RANGE_SHIFT) & 0b11
    if pulse_range not in _PULSE_RANGE:
        raise CodecError(
            f"{characteristic}: measurement status 0x{status:04x} has the reserved pulse rate "
            "range value 3; the cuff firmware does not follow the Blood Pressure Profile"
        )
    pulse_flag = _PULSE_RANGE[pulse_range]
    if pulse_flag is not None:
        flags.add(pulse_flag)
    return frozenset(flags)


def _user_id(fields: Fields) -> int | None:
    user_id = fields.get("user_id", int)
    return None if user_id == UNKNOWN_USER else user_id


def _pulse_rate(fields: Fields) -> float | None:
    pulse_rate = fields.get("pulse_rate", MderFloat)
    return None if pulse_rate is None else pulse_rate.optional("pulse rate")


def _decode(data: bytes, characteristic: str) -> tuple[Fields, PressureUnit, frozenset[ReadingFlag]]:
    flags = read_flags(data, characteristic)
    fields, _ = read_fields(data, 1, flags, _LAYOUT, characteristic)
    unit = PressureUnit.KPA if flags & FLAG_KPA else PressureUnit.MMHG
    return fields, unit, _status_flags(fields.get("measurement_status", int), characteristic)


def decode_blood_pressure_measurement(data: bytes) -> BloodPressureMeasurement:
    """Decode a Blood Pressure Measurement (0x2A35) value."""
    characteristic = "Blood Pressure Measurement"
    fields, unit, flags = _decode(data, characteristic)
    require_some_number(characteristic, {name: fields.get(name, MderFloat)
                                         for name in ("systolic", "diastolic", "mean_arterial", "pulse_rate")})
    mean_arterial = fields.require("mean_arterial", MderFloat).optional("mean arterial pressure")
    return BloodPressureMeasurement(
        systolic_mmhg=_in_mmhg(fields.require("systolic", MderFloat).require("systolic"), unit),
        diastolic_mmhg=_in_mmhg(fields.require("diastolic", MderFloat).require("diastolic"), unit),
        mean_arterial_mmhg=None if mean_arterial is None else _in_mmhg(mean_arterial, unit),
        unit_sent=unit,
        timestamp=fields.get("timestamp", BleDateTime),
        pulse_rate_bpm=_pulse_rate(fields),
        user_id=_user_id(fields),
        flags=flags,
    )


def decode_intermediate_cuff_pressure(data: bytes) -> IntermediateCuffPressure:
    """Decode an Intermediate Cuff Pressure (0x2A36) value; diastolic and MAP slots are ignored."""
    characteristic = "Intermediate Cuff Pressure"
    fields, unit, flags = _decode(data, characteristic)
    return IntermediateCuffPressure(
        cuff_pressure_mmhg=_in_mmhg(fields.require("systolic", MderFloat).require("cuff pressure"), unit),
        unit_sent=unit,
        timestamp=fields.get("timestamp", BleDateTime),
        pulse_rate_bpm=_pulse_rate(fields),
        user_id=_user_id(fields),
        flags=flags,
    )


def blood_pressure_reading(
    measurement: BloodPressureMeasurement,
    *,
    device: DeviceInfo,
    resident_id: str,
    received: HubTime,
    clock_offset: timedelta | None,
) -> Reading:
    """Turn a decoded measurement into a :class:`Reading` (see ``measurement_time`` for the offset)."""
    device_time = measurement.timestamp.to_datetime() if measurement.timestamp else None
    measured_at, time_source = measurement_time(device_time, received, clock_offset)
    # Cuffs resend stored readings on every connection; the cuff's own time, user slot and
    # values identify a record. Without a device time there is nothing stable to key on.
    source_key = None
    if device_time is not None:
        source_key = (
            f"bp:{device_time.isoformat()}:u{measurement.user_id}:"
            f"{measurement.systolic_mmhg:g}/{measurement.diastolic_mmhg:g}/{measurement.pulse_rate_bpm}"
        )
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=BloodPressure(
            systolic=measurement.systolic_mmhg,
            diastolic=measurement.diastolic_mmhg,
            mean_arterial=measurement.mean_arterial_mmhg,
            pulse=measurement.pulse_rate_bpm,
        ),
        measured_at=measured_at,
        time_source=time_source,
        received=received,
        device_time=device_time,
        flags=measurement.flags,
        source_key=source_key,
    )
