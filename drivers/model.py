"""The records that drivers emit, in canonical units.

Canonical units on the hub: mmHg, mmol/L, %, bpm, °C, g (acceleration).
Every timestamp is timezone-aware UTC; rendering into local time happens only
at the edges (wire formats, CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

MG_DL_PER_MMOL_L = 18.016
"""Glucose conversion factor used across China (1 mmol/L = 18.016 mg/dL)."""


def mg_dl_to_mmol_l(mg_dl: float) -> float:
    """Convert a glucose concentration from mg/dL to mmol/L, rounded to 0.01."""
    return round(mg_dl / MG_DL_PER_MMOL_L, 2)


class TimeSource(StrEnum):
    """Where a record's measurement time came from (platform contract ``time_source``)."""

    DEVICE = "device"
    """The device's own clock, shifted by its measured offset to the hub clock when known."""
    HUB = "hub"
    """The hub's clock while it was synchronised to network time."""
    HUB_UNSYNCED = "hub_unsynced"
    """The hub's clock before network time sync (a hub has no RTC): the platform may correct it."""
    HUB_CORRECTED = "hub_corrected"
    """Stamped by the hub's clock before network time, then corrected by the hub when its clock
    stepped: the step measured against the monotonic clock, so exact to the step."""
    HUB_ESTIMATED = "hub_estimated"
    """Stamped before network time in an earlier boot, on a clock that could not have been right (before
    the release or in the future): the time given is the start of the boot after it, the latest the
    record can have happened."""


@dataclass(frozen=True, slots=True)
class HubTime:
    """When the hub received something: wall clock, monotonic clock and whether the wall clock is trustworthy."""

    wall: datetime
    monotonic: float
    synced: bool

    def __post_init__(self) -> None:
        if self.wall.tzinfo is None:
            raise ValueError("HubTime.wall must be timezone-aware (UTC)")


class MealContext(StrEnum):
    FASTING = "fasting"
    PREPRANDIAL = "preprandial"
    POSTPRANDIAL = "postprandial"
    BEDTIME = "bedtime"
    CASUAL = "casual"
    UNKNOWN = "unknown"


class GlucoseSample(StrEnum):
    CAPILLARY_WHOLE_BLOOD = "capillary_whole_blood"
    CAPILLARY_PLASMA = "capillary_plasma"
    VENOUS_WHOLE_BLOOD = "venous_whole_blood"
    VENOUS_PLASMA = "venous_plasma"
    INTERSTITIAL_FLUID = "interstitial_fluid"
    CONTROL_SOLUTION = "control_solution"
    UNKNOWN = "unknown"


class ReadingFlag(StrEnum):
    """Conditions the device itself reported about a measurement."""

    CONTROL_SOLUTION = "control_solution"
    PARITY_ERROR = "parity_error"
    ABOVE_RANGE = "above_range"      # meter displayed "HI"
    BELOW_RANGE = "below_range"      # meter displayed "LO"
    CUFF_LOOSE = "cuff_loose"
    BODY_MOVEMENT = "body_movement"
    IRREGULAR_PULSE = "irregular_pulse"
    IMPROPER_POSITION = "improper_position"
    PULSE_RATE_OUT_OF_RANGE = "pulse_rate_out_of_range"
    MEASUREMENT_UNRELIABLE = "measurement_unreliable"
    SENSOR_FAULT = "sensor_fault"


# Flags after which a reading must not be evaluated at all (not a human sample).
NOT_EVALUATED_FLAGS = frozenset({ReadingFlag.CONTROL_SOLUTION})
# Flags that make a single reading ask for a re-measure instead of an alarm.
REMEASURE_FLAGS = frozenset(
    {
        ReadingFlag.PARITY_ERROR,
        ReadingFlag.CUFF_LOOSE,
        ReadingFlag.BODY_MOVEMENT,
        ReadingFlag.IMPROPER_POSITION,
        ReadingFlag.MEASUREMENT_UNRELIABLE,
        ReadingFlag.SENSOR_FAULT,
    }
)


class ReadingType(StrEnum):
    """Platform record types for measurements."""

    BLOOD_PRESSURE = "blood_pressure"
    BLOOD_GLUCOSE = "blood_glucose"
    SPO2 = "spo2"
    BODY_TEMPERATURE = "body_temperature"


@dataclass(frozen=True, slots=True)
class BloodPressure:
    systolic: float
    diastolic: float
    mean_arterial: float | None = None
    pulse: float | None = None
    type = ReadingType.BLOOD_PRESSURE
    unit = "mmHg"


@dataclass(frozen=True, slots=True)
class Glucose:
    mmol_l: float
    meal: MealContext = MealContext.UNKNOWN
    sample: GlucoseSample = GlucoseSample.CAPILLARY_WHOLE_BLOOD
    type = ReadingType.BLOOD_GLUCOSE
    unit = "mmol/L"


@dataclass(frozen=True, slots=True)
class SpO2:
    spo2: float
    pulse: float | None = None
    perfusion_index: float | None = None
    """Perfusion index in % (pulsatile over steady light absorption), where the oximeter reports one."""
    type = ReadingType.SPO2
    unit = "%"


@dataclass(frozen=True, slots=True)
class BodyTemperature:
    celsius: float
    site: str | None = None
    type = ReadingType.BODY_TEMPERATURE
    unit = "Cel"


Measurement = BloodPressure | Glucose | SpO2 | BodyTemperature


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the platform is told about the measuring device."""

    id: str
    transport: str  # "serial" | "ble"
    model: str | None = None
    serial_number: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement from one device for one resident."""

    device: DeviceInfo
    resident_id: str
    measurement: Measurement
    measured_at: datetime
    """Best estimate of when it was measured (UTC), device clock offset already applied."""
    time_source: TimeSource
    received: HubTime
    device_time: datetime | None = None
    """The time exactly as the device reported it (naive local time for most meters), for audit."""
    flags: frozenset[ReadingFlag] = frozenset()
    continuous: bool = False
    """One summary of a continuous stream (an overnight oximeter): the gateway evaluates it at once
    but may commit such summaries in batches, since a stream is not in any device memory to lose."""
    stream_end: bool = False
    """The last summary of its stream (the device hung up or went quiet): the gateway commits the
    stream's batch now rather than at its next turn."""
    source_key: str | None = None
    """The record's identity at the device (e.g. meter serial + meter time + value, or a BLE
    sequence number). The outbox accepts a (device, source_key) pair once, so re-downloads of
    the device memory never upload a record twice."""

    @property
    def type(self) -> ReadingType:
        return self.measurement.type

    @property
    def evaluable(self) -> bool:
        """False for readings that are not a measurement of a person (control solution)."""
        return not (self.flags & NOT_EVALUATED_FLAGS)


@dataclass(frozen=True, slots=True, eq=False)
class MotionBlock:
    """A block of accelerometer samples from a wearable (n x 3 float32, in g)."""

    device_id: str
    resident_id: str
    samples: npt.NDArray[np.float32]
    sample_rate_hz: float
    first_sample: HubTime
    """Hub time of the first sample in the block (arrival time minus block duration)."""
    sequence: int | None = None
    """Device-side block or sample counter, where the device provides one (to see gaps)."""

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[1] != 3:
            raise ValueError(f"MotionBlock.samples must be (n, 3), got {self.samples.shape}")
        if not 1.0 <= self.sample_rate_hz <= 2000.0:
            raise ValueError(f"MotionBlock.sample_rate_hz out of range: {self.sample_rate_hz}")


class DeviceEventKind(StrEnum):
    BUTTON_PRESS = "button_press"        # value: "single" | "double" | "long" | ...
    PRESENCE = "presence"                # value: 0 nobody / 1 somebody
    MOTION = "motion"                    # value: 0 none / 1 stationary / 2 active
    BODY_MOVEMENT = "body_movement"      # value: 0..100
    FALL = "fall"                        # value: 0 no fall / 1 fall
    RESIDENCY = "residency"              # value: 0 / 1 (someone stayed still in one place)
    BATTERY = "battery"                  # value: percent
    CONNECTED = "connected"
    LOST = "lost"
    DEVICE_ERROR = "device_error"        # value: a short code the device reported


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    device_id: str
    resident_id: str
    kind: DeviceEventKind
    received: HubTime
    value: int | str | None = None
    detail: str | None = None
    extra: dict[str, int | float | str] = field(default_factory=dict)
