"""Pulse Oximeter: PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

Spot-check: flags u8 (bit 0 timestamp, bit 1 measurement status, bit 2 device and sensor
status, bit 3 pulse amplitude index, bit 4 device clock not set); SpO2 and pulse rate
(SFLOAT each); then the optional fields in flag order: Date Time, u16, u24, SFLOAT.
Continuous: flags u8 (bit 0 SpO2PR-Fast, bit 1 SpO2PR-Slow, bit 2 measurement status,
bit 3 device and sensor status, bit 4 pulse amplitude index); SpO2PR-Normal (2 SFLOAT);
then the optional fields in flag order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from drivers.ble.datetime_char import DATE_TIME, BleDateTime, measurement_time
from drivers.ble.ieee11073 import (
    SFLOAT,
    UINT16,
    UINT24,
    Fields,
    FieldSpec,
    MderFloat,
    read_fields,
    read_flags,
    require_some_number,
)
from drivers.model import DeviceInfo, HubTime, Reading, ReadingFlag, SpO2

SPOT_CHECK = "PLX Spot-check Measurement"
CONTINUOUS = "PLX Continuous Measurement"

StrEnumT = TypeVar("StrEnumT", bound=StrEnum)

SPOT_FLAG_TIMESTAMP = 0x01
SPOT_FLAG_MEASUREMENT_STATUS = 0x02
SPOT_FLAG_DEVICE_SENSOR_STATUS = 0x04
SPOT_FLAG_PULSE_AMPLITUDE_INDEX = 0x08
SPOT_FLAG_DEVICE_CLOCK_NOT_SET = 0x10

CONT_FLAG_FAST = 0x01
CONT_FLAG_SLOW = 0x02
CONT_FLAG_MEASUREMENT_STATUS = 0x04
CONT_FLAG_DEVICE_SENSOR_STATUS = 0x08
CONT_FLAG_PULSE_AMPLITUDE_INDEX = 0x10

_SPOT_CHECK_LAYOUT = (
    FieldSpec("spo2", SFLOAT),
    FieldSpec("pulse_rate", SFLOAT),
    FieldSpec("timestamp", DATE_TIME, SPOT_FLAG_TIMESTAMP),
    FieldSpec("measurement_status", UINT16, SPOT_FLAG_MEASUREMENT_STATUS),
    FieldSpec("device_sensor_status", UINT24, SPOT_FLAG_DEVICE_SENSOR_STATUS),
    FieldSpec("pulse_amplitude_index", SFLOAT, SPOT_FLAG_PULSE_AMPLITUDE_INDEX),
)
_CONTINUOUS_LAYOUT = (
    FieldSpec("spo2", SFLOAT),
    FieldSpec("pulse_rate", SFLOAT),
    FieldSpec("spo2_fast", SFLOAT, CONT_FLAG_FAST),
    FieldSpec("pulse_rate_fast", SFLOAT, CONT_FLAG_FAST),
    FieldSpec("spo2_slow", SFLOAT, CONT_FLAG_SLOW),
    FieldSpec("pulse_rate_slow", SFLOAT, CONT_FLAG_SLOW),
    FieldSpec("measurement_status", UINT16, CONT_FLAG_MEASUREMENT_STATUS),
    FieldSpec("device_sensor_status", UINT24, CONT_FLAG_DEVICE_SENSOR_STATUS),
    FieldSpec("pulse_amplitude_index", SFLOAT, CONT_FLAG_PULSE_AMPLITUDE_INDEX),
)


class MeasurementStatus(StrEnum):
    """PLX Measurement Status bits 5-15 (bits 0-4 are reserved)."""

    MEASUREMENT_ONGOING = "measurement_ongoing"
    EARLY_ESTIMATED_DATA = "early_estimated_data"
    VALIDATED_DATA = "validated_data"
    FULLY_QUALIFIED_DATA = "fully_qualified_data"
    DATA_FROM_MEASUREMENT_STORAGE = "data_from_measurement_storage"
    DATA_FOR_DEMONSTRATION = "data_for_demonstration"
    DATA_FOR_TESTING = "data_for_testing"
    CALIBRATION_ONGOING = "calibration_ongoing"
    MEASUREMENT_UNAVAILABLE = "measurement_unavailable"
    QUESTIONABLE_MEASUREMENT = "questionable_measurement"
    INVALID_MEASUREMENT = "invalid_measurement"


_MEASUREMENT_STATUS_BITS: dict[int, MeasurementStatus] = {
    1 << bit: status for bit, status in enumerate(MeasurementStatus, start=5)
}


class DeviceSensorStatus(StrEnum):
    """PLX Device and Sensor Status bits 0-15 (bits 16-23 are reserved)."""

    EXTENDED_DISPLAY_UPDATE_ONGOING = "extended_display_update_ongoing"
    EQUIPMENT_MALFUNCTION = "equipment_malfunction"
    SIGNAL_PROCESSING_IRREGULARITY = "signal_processing_irregularity"
    INADEQUATE_SIGNAL = "inadequate_signal"
    POOR_SIGNAL = "poor_signal"
    LOW_PERFUSION = "low_perfusion"
    ERRATIC_SIGNAL = "erratic_signal"
    NONPULSATILE_SIGNAL = "nonpulsatile_signal"
    QUESTIONABLE_PULSE = "questionable_pulse"
    SIGNAL_ANALYSIS_ONGOING = "signal_analysis_ongoing"
    SENSOR_INTERFERENCE = "sensor_interference"
    SENSOR_UNCONNECTED_TO_USER = "sensor_unconnected_to_user"
    UNKNOWN_SENSOR_CONNECTED = "unknown_sensor_connected"
    SENSOR_DISPLACED = "sensor_displaced"
    SENSOR_MALFUNCTIONING = "sensor_malfunctioning"
    SENSOR_DISCONNECTED = "sensor_disconnected"


_DEVICE_SENSOR_STATUS_BITS: dict[int, DeviceSensorStatus] = {
    1 << bit: status for bit, status in enumerate(DeviceSensorStatus)
}

# Statuses that say the number cannot be trusted as a measurement of the resident. Demo and
# test data land here too, until the model has a flag of its own for them.
_UNRELIABLE_MEASUREMENT = frozenset(
    {
        MeasurementStatus.EARLY_ESTIMATED_DATA,
        MeasurementStatus.DATA_FOR_DEMONSTRATION,
        MeasurementStatus.DATA_FOR_TESTING,
        MeasurementStatus.CALIBRATION_ONGOING,
        MeasurementStatus.MEASUREMENT_UNAVAILABLE,
        MeasurementStatus.QUESTIONABLE_MEASUREMENT,
        MeasurementStatus.INVALID_MEASUREMENT,
    }
)
_SENSOR_FAULT = frozenset({DeviceSensorStatus.EQUIPMENT_MALFUNCTION, DeviceSensorStatus.SENSOR_MALFUNCTIONING})
_UNRELIABLE_SIGNAL = (
    frozenset(DeviceSensorStatus)
    - _SENSOR_FAULT
    - {
        DeviceSensorStatus.EXTENDED_DISPLAY_UPDATE_ONGOING,
        DeviceSensorStatus.SIGNAL_ANALYSIS_ONGOING,
    }
)


def _bits(raw: int | None, table: dict[int, StrEnumT]) -> frozenset[StrEnumT]:
    if raw is None:
        return frozenset()
    return frozenset(status for bit, status in table.items() if raw & bit)


def _reading_flags(
    measurement_status: frozenset[MeasurementStatus], device_status: frozenset[DeviceSensorStatus]
) -> frozenset[ReadingFlag]:
    flags: set[ReadingFlag] = set()
    if measurement_status & _UNRELIABLE_MEASUREMENT or device_status & _UNRELIABLE_SIGNAL:
        flags.add(ReadingFlag.MEASUREMENT_UNRELIABLE)
    if device_status & _SENSOR_FAULT:
        flags.add(ReadingFlag.SENSOR_FAULT)
    return frozenset(flags)


def _number(fields: Fields, name: str) -> float | None:
    value = fields.get(name, MderFloat)
    return None if value is None else value.optional(name.replace("_", " "))


@dataclass(frozen=True, slots=True)
class SpotCheckMeasurement:
    spo2_percent: float
    pulse_rate_bpm: float
    timestamp: BleDateTime | None = None
    device_clock_set: bool = True
    """False when the oximeter says its clock was never set: its timestamp means nothing."""
    measurement_status: frozenset[MeasurementStatus] = frozenset()
    device_sensor_status: frozenset[DeviceSensorStatus] = frozenset()
    pulse_amplitude_index: float | None = None
    flags: frozenset[ReadingFlag] = frozenset()


@dataclass(frozen=True, slots=True)
class ContinuousMeasurement:
    """One continuous sample; SpO2 and pulse are None while the finger is out (NaN)."""

    spo2_percent: float | None
    pulse_rate_bpm: float | None
    spo2_fast_percent: float | None = None
    pulse_rate_fast_bpm: float | None = None
    spo2_slow_percent: float | None = None
    pulse_rate_slow_bpm: float | None = None
    measurement_status: frozenset[MeasurementStatus] = frozenset()
    device_sensor_status: frozenset[DeviceSensorStatus] = frozenset()
    pulse_amplitude_index: float | None = None
    flags: frozenset[ReadingFlag] = frozenset()

    @property
    def perfusion_index_percent(self) -> float | None:
        """PLX's Pulse Amplitude Index is the perfusion index, in per cent."""
        return self.pulse_amplitude_index


def decode_spot_check(data: bytes) -> SpotCheckMeasurement:
    """Decode a PLX Spot-check Measurement (0x2A5E) value."""
    flags = read_flags(data, SPOT_CHECK)
    fields, _ = read_fields(data, 1, flags, _SPOT_CHECK_LAYOUT, SPOT_CHECK)
    require_some_number(SPOT_CHECK, {name: fields.get(name, MderFloat) for name in ("spo2", "pulse_rate")})
    measurement_status = _bits(fields.get("measurement_status", int), _MEASUREMENT_STATUS_BITS)
    device_status = _bits(fields.get("device_sensor_status", int), _DEVICE_SENSOR_STATUS_BITS)
    return SpotCheckMeasurement(
        spo2_percent=fields.require("spo2", MderFloat).require("SpO2"),
        pulse_rate_bpm=fields.require("pulse_rate", MderFloat).require("pulse rate"),
        timestamp=fields.get("timestamp", BleDateTime),
        device_clock_set=not flags & SPOT_FLAG_DEVICE_CLOCK_NOT_SET,
        measurement_status=measurement_status,
        device_sensor_status=device_status,
        pulse_amplitude_index=_number(fields, "pulse_amplitude_index"),
        flags=_reading_flags(measurement_status, device_status),
    )


def decode_continuous(data: bytes) -> ContinuousMeasurement:
    """Decode a PLX Continuous Measurement (0x2A5F) value."""
    flags = read_flags(data, CONTINUOUS)
    fields, _ = read_fields(data, 1, flags, _CONTINUOUS_LAYOUT, CONTINUOUS)
    measurement_status = _bits(fields.get("measurement_status", int), _MEASUREMENT_STATUS_BITS)
    device_status = _bits(fields.get("device_sensor_status", int), _DEVICE_SENSOR_STATUS_BITS)
    return ContinuousMeasurement(
        spo2_percent=_number(fields, "spo2"),
        pulse_rate_bpm=_number(fields, "pulse_rate"),
        spo2_fast_percent=_number(fields, "spo2_fast"),
        pulse_rate_fast_bpm=_number(fields, "pulse_rate_fast"),
        spo2_slow_percent=_number(fields, "spo2_slow"),
        pulse_rate_slow_bpm=_number(fields, "pulse_rate_slow"),
        measurement_status=measurement_status,
        device_sensor_status=device_status,
        pulse_amplitude_index=_number(fields, "pulse_amplitude_index"),
        flags=_reading_flags(measurement_status, device_status),
    )


def spot_check_reading(
    measurement: SpotCheckMeasurement,
    *,
    device: DeviceInfo,
    resident_id: str,
    received: HubTime,
    clock_offset: timedelta | None,
) -> Reading:
    """Turn a spot-check into a :class:`Reading`. Continuous samples are for live display and
    detection; a session that wants to upload them should pick one per interval and build the
    reading itself."""
    device_time = measurement.timestamp.to_datetime() if measurement.timestamp else None
    trusted_time = device_time if measurement.device_clock_set else None
    measured_at, time_source = measurement_time(trusted_time, received, clock_offset)
    source_key = None
    if trusted_time is not None:
        source_key = f"plx:{trusted_time.isoformat()}:{measurement.spo2_percent:g}/{measurement.pulse_rate_bpm:g}"
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=SpO2(spo2=measurement.spo2_percent, pulse=measurement.pulse_rate_bpm),
        measured_at=measured_at,
        time_source=time_source,
        received=received,
        device_time=device_time,
        flags=measurement.flags,
        source_key=source_key,
    )
