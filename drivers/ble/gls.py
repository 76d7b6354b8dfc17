"""Glucose Service: Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34).

Measurement layout: flags u8; sequence number u16; base time (Date Time); then by flag bit:
time offset s16 minutes (bit 0); concentration SFLOAT + type/location u8 (bit 1, unit kg/L
or mol/L by bit 2); sensor status annunciation u16 (bit 3). Bit 4 says a context record
with the same sequence number follows. The Record Access Control Point (0x2A52) that
downloads stored records is in :mod:`drivers.ble.racp`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from drivers.ble.datetime_char import DATE_TIME, BleDateTime, measurement_time
from drivers.ble.ieee11073 import (
    SFLOAT,
    SINT16,
    UINT8,
    UINT16,
    Fields,
    FieldSpec,
    MderFloat,
    SpecialValue,
    read_fields,
    read_flags,
)
from drivers.errors import CodecError
from drivers.model import (
    DeviceInfo,
    Glucose,
    GlucoseSample,
    HubTime,
    MealContext,
    Reading,
    ReadingFlag,
    mg_dl_to_mmol_l,
)

MEASUREMENT = "Glucose Measurement"
CONTEXT = "Glucose Measurement Context"

FLAG_TIME_OFFSET = 0x01
FLAG_CONCENTRATION = 0x02
FLAG_UNIT_MOL_PER_L = 0x04
FLAG_SENSOR_STATUS = 0x08
FLAG_CONTEXT_FOLLOWS = 0x10

_MEASUREMENT_LAYOUT = (
    FieldSpec("sequence_number", UINT16),
    FieldSpec("base_time", DATE_TIME),
    FieldSpec("time_offset", SINT16, FLAG_TIME_OFFSET),
    FieldSpec("concentration", SFLOAT, FLAG_CONCENTRATION),
    FieldSpec("type_location", UINT8, FLAG_CONCENTRATION),
    FieldSpec("sensor_status", UINT16, FLAG_SENSOR_STATUS),
)


class SampleType(StrEnum):
    """The SIG's sample types (low nibble of type/location)."""

    CAPILLARY_WHOLE_BLOOD = "capillary_whole_blood"
    CAPILLARY_PLASMA = "capillary_plasma"
    VENOUS_WHOLE_BLOOD = "venous_whole_blood"
    VENOUS_PLASMA = "venous_plasma"
    ARTERIAL_WHOLE_BLOOD = "arterial_whole_blood"
    ARTERIAL_PLASMA = "arterial_plasma"
    UNDETERMINED_WHOLE_BLOOD = "undetermined_whole_blood"
    UNDETERMINED_PLASMA = "undetermined_plasma"
    INTERSTITIAL_FLUID = "interstitial_fluid"
    CONTROL_SOLUTION = "control_solution"


_SAMPLE_TYPES: dict[int, SampleType] = dict(enumerate(SampleType, start=1))

# The platform knows fewer sample kinds than the SIG; arterial and undetermined samples are
# still blood, so they are uploaded as "unknown" rather than guessed.
_PLATFORM_SAMPLE: dict[SampleType, GlucoseSample] = {
    SampleType.CAPILLARY_WHOLE_BLOOD: GlucoseSample.CAPILLARY_WHOLE_BLOOD,
    SampleType.CAPILLARY_PLASMA: GlucoseSample.CAPILLARY_PLASMA,
    SampleType.VENOUS_WHOLE_BLOOD: GlucoseSample.VENOUS_WHOLE_BLOOD,
    SampleType.VENOUS_PLASMA: GlucoseSample.VENOUS_PLASMA,
    SampleType.INTERSTITIAL_FLUID: GlucoseSample.INTERSTITIAL_FLUID,
    SampleType.CONTROL_SOLUTION: GlucoseSample.CONTROL_SOLUTION,
}


class SampleLocation(StrEnum):
    FINGER = "finger"
    ALTERNATE_SITE = "alternate_site"
    EARLOBE = "earlobe"
    CONTROL_SOLUTION = "control_solution"
    NOT_AVAILABLE = "not_available"


_SAMPLE_LOCATIONS: dict[int, SampleLocation] = {
    1: SampleLocation.FINGER,
    2: SampleLocation.ALTERNATE_SITE,
    3: SampleLocation.EARLOBE,
    4: SampleLocation.CONTROL_SOLUTION,
    15: SampleLocation.NOT_AVAILABLE,
}


class SensorStatus(StrEnum):
    """Sensor Status Annunciation bits, in bit order."""

    BATTERY_LOW = "battery_low"
    SENSOR_MALFUNCTION = "sensor_malfunction"
    SAMPLE_SIZE_INSUFFICIENT = "sample_size_insufficient"
    STRIP_INSERTION_ERROR = "strip_insertion_error"
    STRIP_TYPE_INCORRECT = "strip_type_incorrect"
    RESULT_ABOVE_RANGE = "result_above_range"
    RESULT_BELOW_RANGE = "result_below_range"
    TEMPERATURE_TOO_HIGH = "temperature_too_high"
    TEMPERATURE_TOO_LOW = "temperature_too_low"
    STRIP_PULLED_TOO_SOON = "strip_pulled_too_soon"
    GENERAL_DEVICE_FAULT = "general_device_fault"
    TIME_FAULT = "time_fault"


_SENSOR_STATUS_BITS: dict[int, SensorStatus] = {1 << bit: status for bit, status in enumerate(SensorStatus)}

# What each annunciation says about the value itself. Battery low is device health, not the
# reading's; a time fault is handled by distrusting the meter's clock (see glucose_reading).
_STATUS_READING_FLAGS: dict[SensorStatus, ReadingFlag] = {
    SensorStatus.SENSOR_MALFUNCTION: ReadingFlag.SENSOR_FAULT,
    SensorStatus.GENERAL_DEVICE_FAULT: ReadingFlag.SENSOR_FAULT,
    SensorStatus.SAMPLE_SIZE_INSUFFICIENT: ReadingFlag.MEASUREMENT_UNRELIABLE,
    SensorStatus.STRIP_INSERTION_ERROR: ReadingFlag.MEASUREMENT_UNRELIABLE,
    SensorStatus.STRIP_TYPE_INCORRECT: ReadingFlag.MEASUREMENT_UNRELIABLE,
    SensorStatus.TEMPERATURE_TOO_HIGH: ReadingFlag.MEASUREMENT_UNRELIABLE,
    SensorStatus.TEMPERATURE_TOO_LOW: ReadingFlag.MEASUREMENT_UNRELIABLE,
    SensorStatus.STRIP_PULLED_TOO_SOON: ReadingFlag.MEASUREMENT_UNRELIABLE,
    SensorStatus.RESULT_ABOVE_RANGE: ReadingFlag.ABOVE_RANGE,
    SensorStatus.RESULT_BELOW_RANGE: ReadingFlag.BELOW_RANGE,
}

# An infinite concentration is a meter's "HI"/"LO": keep the record, flagged, without a number.
_RANGE_SPECIALS: dict[SpecialValue, ReadingFlag] = {
    SpecialValue.POSITIVE_INFINITY: ReadingFlag.ABOVE_RANGE,
    SpecialValue.NEGATIVE_INFINITY: ReadingFlag.BELOW_RANGE,
}


class ConcentrationUnit(StrEnum):
    KG_PER_L = "kg/L"
    MOL_PER_L = "mol/L"


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """One stored glucose record, concentration in mmol/L whatever unit the meter used."""

    sequence_number: int
    base_time: BleDateTime
    time_offset_minutes: int | None = None
    concentration_mmol_l: float | None = None
    """None when the record has no concentration, or the meter said HI/LO (see flags)."""
    unit_sent: ConcentrationUnit | None = None
    sample_type: SampleType | None = None
    sample_location: SampleLocation | None = None
    sensor_status: frozenset[SensorStatus] = frozenset()
    flags: frozenset[ReadingFlag] = frozenset()
    context_follows: bool = False

    @property
    def is_control_solution(self) -> bool:
        return ReadingFlag.CONTROL_SOLUTION in self.flags

    @property
    def device_time(self) -> datetime | None:
        """Base time plus time offset: the meter-local time of the measurement, if known."""
        base = self.base_time.to_datetime()
        if base is None:
            return None
        return base + timedelta(minutes=self.time_offset_minutes or 0)


def _concentration_mmol_l(value: MderFloat, unit: ConcentrationUnit) -> float:
    if unit is ConcentrationUnit.KG_PER_L:
        return mg_dl_to_mmol_l(value.require("glucose concentration", 5))  # kg/L x 1e5 = mg/dL
    return round(value.require("glucose concentration", 3), 2)  # mol/L x 1e3 = mmol/L


def _sample(type_location: int) -> tuple[SampleType, SampleLocation]:
    sample_type = _SAMPLE_TYPES.get(type_location & 0x0F)
    location = _SAMPLE_LOCATIONS.get(type_location >> 4)
    if sample_type is None or location is None:
        raise CodecError(
            f"{MEASUREMENT}: type/location 0x{type_location:02x} uses a reserved "
            f"{'sample type' if sample_type is None else 'sample location'}; "
            "the meter firmware does not follow the Glucose Profile"
        )
    return sample_type, location


def _sensor_status(raw: int | None) -> frozenset[SensorStatus]:
    if raw is None:
        return frozenset()
    return frozenset(status for bit, status in _SENSOR_STATUS_BITS.items() if raw & bit)


def decode_glucose_measurement(data: bytes) -> GlucoseMeasurement:
    """Decode a Glucose Measurement (0x2A18) value."""
    flags = read_flags(data, MEASUREMENT)
    fields, _ = read_fields(data, 1, flags, _MEASUREMENT_LAYOUT, MEASUREMENT)
    status = _sensor_status(fields.get("sensor_status", int))
    reading_flags = {_STATUS_READING_FLAGS[s] for s in status if s in _STATUS_READING_FLAGS}
    concentration: float | None = None
    unit: ConcentrationUnit | None = None
    sample_type: SampleType | None = None
    location: SampleLocation | None = None
    if flags & FLAG_CONCENTRATION:
        unit = ConcentrationUnit.MOL_PER_L if flags & FLAG_UNIT_MOL_PER_L else ConcentrationUnit.KG_PER_L
        raw = fields.require("concentration", MderFloat)
        if raw.special in _RANGE_SPECIALS:
            reading_flags.add(_RANGE_SPECIALS[raw.special])
        else:
            concentration = _concentration_mmol_l(raw, unit)
        sample_type, location = _sample(fields.require("type_location", int))
        if sample_type is SampleType.CONTROL_SOLUTION or location is SampleLocation.CONTROL_SOLUTION:
            reading_flags.add(ReadingFlag.CONTROL_SOLUTION)
    return GlucoseMeasurement(
        sequence_number=fields.require("sequence_number", int),
        base_time=fields.require("base_time", BleDateTime),
        time_offset_minutes=fields.get("time_offset", int),
        concentration_mmol_l=concentration,
        unit_sent=unit,
        sample_type=sample_type,
        sample_location=location,
        sensor_status=status,
        flags=frozenset(reading_flags),
        context_follows=bool(flags & FLAG_CONTEXT_FOLLOWS),
    )


# --- Glucose Measurement Context (0x2A34) -------------------------------------------------

CONTEXT_FLAG_CARBOHYDRATE = 0x01
CONTEXT_FLAG_MEAL = 0x02
CONTEXT_FLAG_TESTER_HEALTH = 0x04
CONTEXT_FLAG_EXERCISE = 0x08
CONTEXT_FLAG_MEDICATION = 0x10
CONTEXT_FLAG_MEDICATION_LITERS = 0x20
CONTEXT_FLAG_HBA1C = 0x40
CONTEXT_FLAG_EXTENDED = 0x80

_CONTEXT_LAYOUT = (
    FieldSpec("sequence_number", UINT16),
    FieldSpec("extended_flags", UINT8, CONTEXT_FLAG_EXTENDED),
    FieldSpec("carbohydrate_id", UINT8, CONTEXT_FLAG_CARBOHYDRATE),
    FieldSpec("carbohydrate", SFLOAT, CONTEXT_FLAG_CARBOHYDRATE),
    FieldSpec("meal", UINT8, CONTEXT_FLAG_MEAL),
    FieldSpec("tester_health", UINT8, CONTEXT_FLAG_TESTER_HEALTH),
    FieldSpec("exercise_duration", UINT16, CONTEXT_FLAG_EXERCISE),
    FieldSpec("exercise_intensity", UINT8, CONTEXT_FLAG_EXERCISE),
    FieldSpec("medication_id", UINT8, CONTEXT_FLAG_MEDICATION),
    FieldSpec("medication", SFLOAT, CONTEXT_FLAG_MEDICATION),
    FieldSpec("hba1c", SFLOAT, CONTEXT_FLAG_HBA1C),
)

_MEALS: dict[int, MealContext] = {
    1: MealContext.PREPRANDIAL,
    2: MealContext.POSTPRANDIAL,
    3: MealContext.FASTING,
    4: MealContext.CASUAL,
    5: MealContext.BEDTIME,
}

_EXERCISE_DURATION_OVERRUN = 0xFFFF


@dataclass(frozen=True, slots=True)
class GlucoseContext:
    """What the resident told the meter about a measurement (matched by sequence number)."""

    sequence_number: int
    meal: MealContext = MealContext.UNKNOWN
    carbohydrate_id: int | None = None
    carbohydrate_grams: float | None = None
    tester: int | None = None
    """1 self, 2 health care professional, 3 lab test, 15 not available."""
    health: int | None = None
    """1 minor issues, 2 major issues, 3 menses, 4 stress, 5 none, 15 not available."""
    exercise_duration_s: int | None = None
    """None when absent or 0xFFFF (overrun)."""
    exercise_intensity_percent: int | None = None
    medication_id: int | None = None
    medication_milligrams: float | None = None
    medication_milliliters: float | None = None
    hba1c_percent: float | None = None


def _optional_number(fields: Fields, name: str, power_of_ten: int = 0) -> float | None:
    value = fields.get(name, MderFloat)
    return None if value is None else value.optional(name.replace("_", " "), power_of_ten)


def decode_glucose_context(data: bytes) -> GlucoseContext:
    """Decode a Glucose Measurement Context (0x2A34) value."""
    flags = read_flags(data, CONTEXT)
    fields, _ = read_fields(data, 1, flags, _CONTEXT_LAYOUT, CONTEXT)
    meal = MealContext.UNKNOWN
    meal_code = fields.get("meal", int)
    if meal_code is not None:
        if meal_code not in _MEALS:
            raise CodecError(f"{CONTEXT}: meal code {meal_code} is reserved (expected 1-5)")
        meal = _MEALS[meal_code]
    tester_health = fields.get("tester_health", int)
    duration = fields.get("exercise_duration", int)
    in_liters = bool(flags & CONTEXT_FLAG_MEDICATION_LITERS)
    medication = _optional_number(fields, "medication", 3 if in_liters else 6)  # L -> mL, kg -> mg
    return GlucoseContext(
        sequence_number=fields.require("sequence_number", int),
        meal=meal,
        carbohydrate_id=fields.get("carbohydrate_id", int),
        carbohydrate_grams=_optional_number(fields, "carbohydrate", 3),
        tester=None if tester_health is None else tester_health & 0x0F,
        health=None if tester_health is None else tester_health >> 4,
        exercise_duration_s=None if duration in (None, _EXERCISE_DURATION_OVERRUN) else duration,
        exercise_intensity_percent=fields.get("exercise_intensity", int),
        medication_id=fields.get("medication_id", int),
        medication_milligrams=None if in_liters else medication,
        medication_milliliters=medication if in_liters else None,
        hba1c_percent=_optional_number(fields, "hba1c"),
    )


def pair_contexts(
    measurements: Iterable[GlucoseMeasurement], contexts: Iterable[GlucoseContext]
) -> list[tuple[GlucoseMeasurement, GlucoseContext | None]]:
    """Match each measurement with the context record carrying its sequence number, if any."""
    by_sequence = {context.sequence_number: context for context in contexts}
    return [(m, by_sequence.get(m.sequence_number)) for m in measurements]


def glucose_reading(
    measurement: GlucoseMeasurement,
    context: GlucoseContext | None,
    *,
    device: DeviceInfo,
    resident_id: str,
    received: HubTime,
    clock_offset: timedelta | None,
) -> Reading | None:
    """Turn a record (and its context) into a :class:`Reading`; None when it has no number.

    A record without a concentration (flag bit 1 clear) or with a HI/LO infinity carries
    nothing to upload as a value; the session should surface HI/LO as a device event.
    """
    if context is not None and context.sequence_number != measurement.sequence_number:
        raise ValueError(
            f"context #{context.sequence_number} does not belong to measurement "
            f"#{measurement.sequence_number}; match them with pair_contexts()"
        )
    if measurement.concentration_mmol_l is None:
        return None
    device_time = measurement.device_time
    trusted_time = None if SensorStatus.TIME_FAULT in measurement.sensor_status else device_time
    measured_at, time_source = measurement_time(trusted_time, received, clock_offset)
    sample = GlucoseSample.UNKNOWN
    if measurement.sample_type is not None:
        sample = _PLATFORM_SAMPLE.get(measurement.sample_type, GlucoseSample.UNKNOWN)
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=Glucose(
            mmol_l=measurement.concentration_mmol_l,
            meal=context.meal if context is not None else MealContext.UNKNOWN,
            sample=sample,
        ),
        measured_at=measured_at,
        time_source=time_source,
        received=received,
        device_time=device_time,
        flags=measurement.flags,
        # Sequence numbers only grow on a meter, but a reset meter starts again at 0: the base
        # time keeps two records with the same number apart.
        source_key=f"gls:{measurement.sequence_number}@{base_time_key(measurement.base_time)}",
    )


def base_time_key(base_time: BleDateTime) -> str:
    """A base time as sortable text; year 0 (unknown) sorts first."""
    return (
        f"{base_time.year or 0:04d}-{base_time.month or 0:02d}-{base_time.day or 0:02d}"
        f"T{base_time.hours:02d}:{base_time.minutes:02d}:{base_time.seconds:02d}"
    )
