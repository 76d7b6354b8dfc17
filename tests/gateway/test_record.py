"""The platform record: what wire.py builds, to_json, from_json and back are the same text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.model import (
    BloodPressure,
    BodyTemperature,
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
from gateway.alerts.model import Alert, AlertState, Message
from gateway.errors import GatewayError, RecordFormatError
from gateway.fleet.health import probe_record
from gateway.record import MAX_RECORD_CHARS, EventValues, PlatformRecord, RecordType, SpO2Values
from gateway.store.api import PendingRecord, Priority
from gateway.uplink.fhir_client import FhirEncoder
from gateway.vocabulary import AlertKind, Severity
from gateway.wire import compact, platform_alert, platform_event, platform_reading

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 21, 23, 31, 5, tzinfo=UTC)
RECORD_ID = "0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a69"


def reading(measurement: Any, **changes: Any) -> Reading:
    return Reading(**({
        "device": DeviceInfo("ble:C4:7C:8D:6A:11:02", "ble", "Omron HEM-7155T", "SN-1"),
        "resident_id": "r-430121-0042", "measurement": measurement, "measured_at": AT,
        "time_source": TimeSource.DEVICE, "received": HubTime(AT, 5.0, True),
    } | changes))


def every_kind() -> list[PlatformRecord]:
    alert = Alert(alert_id="a-0001", kind=AlertKind.HYPOGLYCAEMIA, severity=Severity.EMERGENCY,
                  state=AlertState.RAISED, resident_id="r-1", raised_at=AT, message=Message("低血糖", "low"),
                  evidence={"value_mmol_l": 2.6, "threshold": 3.0, "rule": "hypo", "readings": ["x", "y"]},
                  related_record_ids=(RECORD_ID,))
    return [
        platform_reading(reading(BloodPressure(152, 94, 113, 71), flags=frozenset({ReadingFlag.IRREGULAR_PULSE})), TZ),
        platform_reading(reading(BloodPressure(120.4, 80.6)), TZ),
        platform_reading(reading(Glucose(2.78, MealContext.PREPRANDIAL, GlucoseSample.CAPILLARY_WHOLE_BLOOD),
                                 device=DeviceInfo("glucose-kitchen", "serial")), TZ),
        platform_reading(reading(SpO2(96.5)), TZ),
        platform_reading(reading(SpO2(96, 62, 8.04)), TZ),
        platform_reading(reading(BodyTemperature(38.25, "ear")), TZ),
        platform_reading(reading(BodyTemperature(36.6)), TZ),
        platform_alert(alert, TZ, synced=False),
        platform_event(RecordType.FALL, resident_id="r-1", device_id="ble:D1", at=AT, synced=True, tz=TZ,
                       values={"source": "wearable", "peak_g": 3.4, "confirmed": True, "impact_at": "x"}),
        platform_event(RecordType.HELP_REQUEST, resident_id="r-1", device_id="sos", at=AT, synced=True, tz=TZ,
                       values={"source": "button", "press": "long"}),
        platform_event(RecordType.DEVICE_STATUS, resident_id="", device_id="ble:SOS", at=AT, synced=True, tz=TZ,
                       values={"event": "battery", "value": 15}),
    ]


def test_every_type_is_covered() -> None:
    assert {record.type for record in every_kind()} == set(RecordType)


@pytest.mark.parametrize("record", every_kind(), ids=lambda r: str(r.type))
def test_to_json_is_the_compact_object_and_from_json_reads_it_back_exactly(record: PlatformRecord) -> None:
    text = record.to_json()
    assert text == compact(record.as_json())
    assert PlatformRecord.from_json(text) == record
    assert PlatformRecord.from_json(text).to_json() == text


@pytest.mark.parametrize("record", every_kind(), ids=lambda r: str(r.type))
def test_the_text_with_the_outboxs_record_id_reads_back_with_it(record: PlatformRecord) -> None:
    stored = f'{{"record_id":"{RECORD_ID}",{record.to_json()[1:]}'   # as gateway.store.records splices it
    typed = PlatformRecord.from_json(stored)
    assert typed.record_id == RECORD_ID
    assert typed.to_json() == stored


def test_a_stored_text_keeps_its_own_times_and_numbers() -> None:
    text = ('{"type":"spo2","resident_id":"r-1","device":{"id":"ox","transport":"ble"},'
            '"measured_at":"2026-11-22T07:31:05+08:00","received_at":"2026-11-22T07:31:09.412+08:00",'
            '"time_source":"hub_corrected","values":{"spo2":97.0,"pulse":62},"unit":"%","flags":[]}')
    record = PlatformRecord.from_json(text)
    assert record.values == SpO2Values(97.0, 62)
    assert record.to_json() == text


def good() -> dict[str, Any]:
    return json.loads(every_kind()[0].to_json())


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"type": "weight"}, "type", "record type 'weight' is not a platform record type"),
    ({"values": {"systolic": "high", "diastolic": 80}}, "values.systolic",
     "values.systolic is 'high', not a finite number"),
    ({"values": {"diastolic": 80}}, "values.systolic", "values.systolic is missing"),
    ({"values": [1]}, "values", "record has no 'values' object"),
    ({"measured_at": "yesterday"}, "measured_at", "record measured_at 'yesterday' is not an ISO 8601 time"),
    ({"time_source": "sundial"}, "time_source", "record time_source 'sundial' is not one the contract knows"),
    ({"flags": "hi"}, "flags", "record flags are not a list of names"),
    ({"device": {"model": "x"}}, "device.id", "device has no 'id' text"),
    ({"resident_id": 42}, "resident_id", "resident_id is 42, not text"),
])
def test_a_malformed_record_is_refused_naming_its_field(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(RecordFormatError) as info:
        PlatformRecord.from_json(compact(good() | change))
    assert info.value.field == field
    assert str(info.value).startswith(message)
    assert isinstance(info.value, GatewayError)


@pytest.mark.parametrize(("text", "message"), [
    ("[1]", "record text is not a JSON object"),
    ('{"type": NaN}', "record text is not JSON: NaN is not JSON"),
    ("{", "record text is not JSON"),
    ("[" * 100_000 + "]" * 100_000, "record text is nested too deeply"),
    (" " * (MAX_RECORD_CHARS + 1), f"record text is {MAX_RECORD_CHARS + 1} characters; at most"),
])
def test_text_that_is_not_a_record_is_refused_as_a_whole(text: str, message: str) -> None:
    with pytest.raises(RecordFormatError) as info:
        PlatformRecord.from_json(text)
    assert info.value.field == "record"
    assert str(info.value).startswith(message)


def test_an_alert_evidence_of_nested_objects_is_refused_naming_the_item() -> None:
    record = json.loads(every_kind()[7].to_json())
    record["values"]["evidence"]["window"] = {"from": 1}
    with pytest.raises(RecordFormatError) as info:
        PlatformRecord.from_json(compact(record))
    assert info.value.field == "values.evidence.window"


def test_a_record_is_made_with_the_values_of_its_type() -> None:
    record = every_kind()[3]
    with pytest.raises(RecordFormatError) as info:
        PlatformRecord(type=RecordType.BLOOD_PRESSURE, resident_id="r-1", measured_at=record.measured_at,
                       received_at=record.received_at, time_source=TimeSource.HUB, values=EventValues())
    assert info.value.field == "values"


def test_the_fhir_profile_dead_letters_a_malformed_stored_record_naming_its_field() -> None:
    stored = json.loads(every_kind()[0].to_json()) | {"record_id": RECORD_ID, "values": {"diastolic": 80}}
    pending = PendingRecord(RECORD_ID, "blood_pressure", Priority.READING, compact(stored), 0)
    assert FhirEncoder().unsendable_reason(pending) == "FHIR profile: values.systolic is missing"
    good_one = PendingRecord(RECORD_ID, "blood_pressure", Priority.READING,
                             f'{{"record_id":"{RECORD_ID}",{every_kind()[0].to_json()[1:]}', 0)
    assert FhirEncoder().unsendable_reason(good_one) is None


def test_the_fleet_probe_is_a_record_of_the_hub_that_names_no_resident() -> None:
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    probe = probe_record(gateway_id="gw-0042", version=7, at=at, synced=False, tz=ZoneInfo("Asia/Shanghai"))
    record = PlatformRecord.from_json(probe.payload_json)
    assert record.to_json() == probe.payload_json
    assert (record.type, record.resident_id) == (RecordType.DEVICE_STATUS, None)
    assert record.time_source is TimeSource.HUB_UNSYNCED
    assert record.device is not None and (record.device.id, record.device.transport) == ("gw-0042", "hub")
    assert record.values.as_json() == {"event": "configuration_applied", "version": 7}
    assert record.measured_at == "2026-11-30T16:00:00.000+08:00"
