"""GATT service and characteristic UUIDs the BLE drivers use, as one table.

SIG-assigned 16-bit UUIDs live in the Bluetooth base UUID; vendor UUIDs are written out.
bleak reports UUIDs in lower case, so every value here is lower case.
"""

from __future__ import annotations

from dataclasses import dataclass

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def sig_uuid(short: int) -> str:
    """The 128-bit form of a SIG-assigned 16-bit UUID, as bleak reports it."""
    if not 0 <= short <= 0xFFFF:
        raise ValueError(f"{short:#x} is not a 16-bit UUID")
    return f"0000{short:04x}{_BASE_SUFFIX}"


def _microbit(short: str) -> str:
    return f"e95d{short}-251d-470a-a062-fa1922dfa9a8"


def _thingy(short: str) -> str:
    return f"ef68{short}-9b35-4933-9b10-52ffa9740042"


@dataclass(frozen=True, slots=True)
class GattCharacteristic:
    name: str
    uuid: str
    service: str


# Services
BLOOD_PRESSURE_SERVICE = sig_uuid(0x1810)
GLUCOSE_SERVICE = sig_uuid(0x1808)
HEALTH_THERMOMETER_SERVICE = sig_uuid(0x1809)
PULSE_OXIMETER_SERVICE = sig_uuid(0x1822)
CURRENT_TIME_SERVICE = sig_uuid(0x1805)
BATTERY_SERVICE = sig_uuid(0x180F)
IMMEDIATE_ALERT_SERVICE = sig_uuid(0x1802)
ITAG_BUTTON_SERVICE = sig_uuid(0xFFE0)
MICROBIT_ACCELEROMETER_SERVICE = _microbit("0753")
THINGY_MOTION_SERVICE = _thingy("0400")
BTHOME_SERVICE_DATA = sig_uuid(0xFCD2)
"""Not a GATT service: the service-data UUID BTHome v2 advertisements carry."""
MIBEACON_SERVICE_DATA = sig_uuid(0xFE95)
"""Not a GATT service here: the service-data UUID of Xiaomi MiBeacon advertisements."""

# Characteristics
BLOOD_PRESSURE_MEASUREMENT = GattCharacteristic("Blood Pressure Measurement", sig_uuid(0x2A35), BLOOD_PRESSURE_SERVICE)
INTERMEDIATE_CUFF_PRESSURE = GattCharacteristic("Intermediate Cuff Pressure", sig_uuid(0x2A36), BLOOD_PRESSURE_SERVICE)
BLOOD_PRESSURE_FEATURE = GattCharacteristic("Blood Pressure Feature", sig_uuid(0x2A49), BLOOD_PRESSURE_SERVICE)
GLUCOSE_MEASUREMENT = GattCharacteristic("Glucose Measurement", sig_uuid(0x2A18), GLUCOSE_SERVICE)
GLUCOSE_MEASUREMENT_CONTEXT = GattCharacteristic("Glucose Measurement Context", sig_uuid(0x2A34), GLUCOSE_SERVICE)
GLUCOSE_FEATURE = GattCharacteristic("Glucose Feature", sig_uuid(0x2A51), GLUCOSE_SERVICE)
RECORD_ACCESS_CONTROL_POINT = GattCharacteristic("Record Access Control Point", sig_uuid(0x2A52), GLUCOSE_SERVICE)
TEMPERATURE_MEASUREMENT = GattCharacteristic("Temperature Measurement", sig_uuid(0x2A1C), HEALTH_THERMOMETER_SERVICE)
TEMPERATURE_TYPE = GattCharacteristic("Temperature Type", sig_uuid(0x2A1D), HEALTH_THERMOMETER_SERVICE)
PLX_SPOT_CHECK_MEASUREMENT = GattCharacteristic("PLX Spot-check Measurement", sig_uuid(0x2A5E), PULSE_OXIMETER_SERVICE)
PLX_CONTINUOUS_MEASUREMENT = GattCharacteristic("PLX Continuous Measurement", sig_uuid(0x2A5F), PULSE_OXIMETER_SERVICE)
PLX_FEATURES = GattCharacteristic("PLX Features", sig_uuid(0x2A60), PULSE_OXIMETER_SERVICE)
CURRENT_TIME = GattCharacteristic("Current Time", sig_uuid(0x2A2B), CURRENT_TIME_SERVICE)
DATE_TIME = GattCharacteristic("Date Time", sig_uuid(0x2A08), CURRENT_TIME_SERVICE)
BATTERY_LEVEL = GattCharacteristic("Battery Level", sig_uuid(0x2A19), BATTERY_SERVICE)
ALERT_LEVEL = GattCharacteristic("Alert Level", sig_uuid(0x2A06), IMMEDIATE_ALERT_SERVICE)
ITAG_BUTTON = GattCharacteristic("iTAG button", sig_uuid(0xFFE1), ITAG_BUTTON_SERVICE)
MICROBIT_ACCELEROMETER_DATA = GattCharacteristic(
    "micro:bit Accelerometer Data", _microbit("ca4b"), MICROBIT_ACCELEROMETER_SERVICE
)
MICROBIT_ACCELEROMETER_PERIOD = GattCharacteristic(
    "micro:bit Accelerometer Period", _microbit("fb24"), MICROBIT_ACCELEROMETER_SERVICE
)
THINGY_MOTION_CONFIG = GattCharacteristic("Thingy:52 Motion Configuration", _thingy("0401"), THINGY_MOTION_SERVICE)
THINGY_RAW_DATA = GattCharacteristic("Thingy:52 Raw Data", _thingy("0406"), THINGY_MOTION_SERVICE)

CHARACTERISTICS: dict[str, GattCharacteristic] = {
    c.uuid: c
    for c in (
        BLOOD_PRESSURE_MEASUREMENT,
        INTERMEDIATE_CUFF_PRESSURE,
        BLOOD_PRESSURE_FEATURE,
        GLUCOSE_MEASUREMENT,
        GLUCOSE_MEASUREMENT_CONTEXT,
        GLUCOSE_FEATURE,
        RECORD_ACCESS_CONTROL_POINT,
        TEMPERATURE_MEASUREMENT,
        TEMPERATURE_TYPE,
        PLX_SPOT_CHECK_MEASUREMENT,
        PLX_CONTINUOUS_MEASUREMENT,
        PLX_FEATURES,
        CURRENT_TIME,
        DATE_TIME,
        BATTERY_LEVEL,
        ALERT_LEVEL,
        ITAG_BUTTON,
        MICROBIT_ACCELEROMETER_DATA,
        MICROBIT_ACCELEROMETER_PERIOD,
        THINGY_MOTION_CONFIG,
        THINGY_RAW_DATA,
    )
}
"""Every characteristic above by UUID, e.g. to name a characteristic in a log line."""
