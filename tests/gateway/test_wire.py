"""Records exactly as the platform contract shows them (platform-api.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from drivers.model import (
    BloodPressure,
    DeviceInfo,
    Glucose,
    GlucoseSample,
    HubTime,
    MealContext,
    Reading,
    ReadingFlag,
    SpO2,
    TimeSource,
)
from gateway.wire import hub_record, local_reading_payload, reading_record

TZ = ZoneInfo("Asia/Shanghai")


def test_blood_pressure_record_matches_the_contract_example() -> None:
    reading = Reading(
        device=DeviceInfo("ble:C4:7C:8D:6A:11:02", "ble", "Omron HEM-7155T"),
        resident_id="r-430121-0042",
        measurement=BloodPressure(152, 94, 113, 71),
        measured_at=datetime(2026, 11, 21, 23, 31, 5, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        received=HubTime(datetime(2026, 11, 21, 23, 31, 9, 412000, tzinfo=UTC), 5.0, True),
        flags=frozenset({ReadingFlag.IRREGULAR_PULSE}),
    )
    assert reading_record(reading, TZ) == {
        "type": "blood_pressure",
        "resident_id": "r-430121-0042",
        "device": {"id": "ble:C4:7C:8D:6A:11:02", "model": "Omron HEM-7155T", "transport": "ble"},
        "measured_at": "2026-11-22T07:31:05.000+08:00",
        "received_at": "2026-11-22T07:31:09.412+08:00",
        "time_source": "device",
        "values": {"systolic": 152, "diastolic": 94, "mean_arterial": 113, "pulse": 71},
        "unit": "mmHg",
        "flags": ["irregular_pulse"],
    }


def test_glucose_record_carries_meal_and_sample_and_local_payload_drops_the_device() -> None:
    reading = Reading(
        device=DeviceInfo("glucose-kitchen", "serial", "OneTouch Ultra 2", "GMF600DCY"),
        resident_id="r-1", measurement=Glucose(2.78, MealContext.PREPRANDIAL, GlucoseSample.CAPILLARY_WHOLE_BLOOD),
        measured_at=datetime(2026, 11, 22, 0, 0, tzinfo=UTC), time_source=TimeSource.HUB_UNSYNCED,
        received=HubTime(datetime(2026, 11, 22, 0, 0, 1, tzinfo=UTC), 1.0, False), source_key="k")
    record = reading_record(reading, TZ)
    assert record["values"] == {"value": 2.78, "meal": "preprandial", "sample": "capillary_whole_blood"}
    assert record["unit"] == "mmol/L"
    assert record["device"]["serial"] == "GMF600DCY"
    assert record["time_source"] == "hub_unsynced"
    local = local_reading_payload(reading, TZ)
    assert "device" not in local
    assert local["values"] == record["values"]


def test_spo2_without_pulse_leaves_it_out() -> None:
    reading = Reading(device=DeviceInfo("ox", "ble"), resident_id="r-1", measurement=SpO2(96.5),
                      measured_at=datetime(2026, 1, 1, tzinfo=UTC), time_source=TimeSource.HUB,
                      received=HubTime(datetime(2026, 1, 1, tzinfo=UTC), 0.0, True))
    assert reading_record(reading, TZ)["values"] == {"spo2": 96.5}


def test_spo2_carries_the_perfusion_index_in_percent_where_the_oximeter_gives_one() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    reading = Reading(device=DeviceInfo("pc60f", "ble"), resident_id="r-1", measurement=SpO2(96, 62, 8.04),
                      measured_at=at, time_source=TimeSource.HUB, received=HubTime(at, 0.0, True), continuous=True)
    assert reading_record(reading, TZ)["values"] == {"spo2": 96, "pulse": 62, "perfusion_index": 8.0}


def test_hub_records_say_whether_the_hub_clock_was_synchronised() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    synced = hub_record("help_request", resident_id="r-1", device_id="sos", at=at, synced=True, values={}, tz=TZ)
    unsynced = hub_record("help_request", resident_id="r-1", device_id="sos", at=at, synced=False, values={}, tz=TZ)
    assert (synced["time_source"], unsynced["time_source"]) == ("hub", "hub_unsynced")
