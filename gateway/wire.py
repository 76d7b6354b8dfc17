"""Records as the provincial platform receives them (Platform Upload API v1), pure.

Each record is built here as one :class:`gateway.record.PlatformRecord`; the outbox
stores its ``to_json()`` text at acceptance (minus ``record_id``, which the outbox
adds), so what is uploaded is exactly what was accepted, and a later change of code
cannot change a record waiting in the queue. The ``*_record`` functions give the
same record as its JSON object (the home broker's payloads are made from it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from drivers.model import (
    BloodPressure,
    BodyTemperature,
    Glucose,
    Measurement,
    Reading,
    SpO2,
    TimeSource,
)
from gateway.alerts.model import Alert, AlertChange, AlertState
from gateway.record import (
    AlertValues,
    BloodPressureValues,
    EventValues,
    EvidenceValue,
    GlucoseValues,
    PlatformRecord,
    RecordDevice,
    RecordType,
    RecordValues,
    SpO2Values,
    TemperatureValues,
)


def iso(ts: datetime, tz: tzinfo) -> str:
    """ISO 8601 with milliseconds and the local UTC offset, as in the contract's examples."""
    return ts.astimezone(tz).isoformat(timespec="milliseconds")


def _round(value: float, digits: int) -> float:
    rounded = round(value, digits)
    return int(rounded) if digits == 0 else rounded


def _round_opt(value: float | None, digits: int) -> float | None:
    return None if value is None else _round(value, digits)


def reading_values(m: Measurement) -> RecordValues:
    """The typed ``values`` of a reading, rounded as the contract gives them."""
    match m:
        case BloodPressure():
            return BloodPressureValues(_round(m.systolic, 0), _round(m.diastolic, 0),
                                       _round_opt(m.mean_arterial, 0), _round_opt(m.pulse, 0))
        case Glucose():
            return GlucoseValues(_round(m.mmol_l, 2), m.meal.value, m.sample.value)
        case SpO2():
            return SpO2Values(_round(m.spo2, 1), _round_opt(m.pulse, 0), _round_opt(m.perfusion_index, 1))
        case BodyTemperature():
            return TemperatureValues(_round(m.celsius, 2), m.site)


def measurement_values(m: Measurement) -> dict[str, Any]:
    return reading_values(m).as_json()


def platform_reading(reading: Reading, tz: tzinfo) -> PlatformRecord:
    """The platform record of one reading."""
    device = reading.device
    return PlatformRecord(
        type=RecordType(reading.type.value),
        resident_id=reading.resident_id,
        device=RecordDevice(device.id, device.transport, device.model or None, device.serial_number or None),
        measured_at=iso(reading.measured_at, tz),
        received_at=iso(reading.received.wall, tz),
        time_source=reading.time_source,
        values=reading_values(reading.measurement),
        unit=reading.measurement.unit,
        flags=tuple(sorted(f.value for f in reading.flags)),
    )


def reading_record(reading: Reading, tz: tzinfo) -> dict[str, Any]:
    return platform_reading(reading, tz).as_json()


def local_reading_payload(reading: Reading, tz: tzinfo) -> dict[str, Any]:
    """``residents/{rid}/readings/{type}`` on the home broker: the record as uploaded, minus device identifiers."""
    record = reading_record(reading, tz)
    del record["device"]
    return record


def hub_time_source(synced: bool) -> TimeSource:
    return TimeSource.HUB if synced else TimeSource.HUB_UNSYNCED


def platform_alert(alert: Alert, tz: tzinfo, *, synced: bool) -> PlatformRecord:
    """The platform's ``alert`` record for one lifecycle state of an alert."""
    return PlatformRecord(
        type=RecordType.ALERT,
        resident_id=alert.resident_id,
        measured_at=iso(alert.raised_at, tz),
        received_at=iso(alert.raised_at, tz),
        time_source=hub_time_source(synced),
        values=AlertValues(
            alert_id=alert.alert_id,
            kind=alert.kind.value,
            severity=alert.severity.value,
            state=alert.state.value,
            evidence=dict(alert.evidence),
            related_record_ids=tuple(alert.related_record_ids),
        ),
    )


def alert_record(alert: Alert, tz: tzinfo, *, synced: bool) -> dict[str, Any]:
    return platform_alert(alert, tz, synced=synced).as_json()


def alert_message(alert: Alert, tz: tzinfo) -> dict[str, Any]:
    """``residents/{rid}/alerts/{alert_id}`` and ``residents/{rid}/events/alert`` payload (docs/mqtt-contract.md)."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "resident_id": alert.resident_id,
        "raised_at": iso(alert.raised_at, tz),
        "message": {"zh": alert.message.zh, "en": alert.message.en},
        "evidence": alert.evidence,
        "acked_by": alert.acked_by,
        "tier": alert.tier,
        "told": list(alert.told),
        "snoozed_until": {contact: iso(until, tz) for contact, until in alert.snoozed_until.items()},
    }


def alert_event(change: AlertChange, tz: tzinfo) -> dict[str, Any]:
    """``residents/{rid}/events/alert``: the alert as changed, and the contacts this change is for (``notify``)."""
    return {**alert_message(change.alert, tz), "notify": list(change.notify)}


def alert_summary(resident_id: str, open_alerts: Sequence[Alert]) -> dict[str, Any]:
    """``residents/{rid}/alert_summary``, retained: whether the resident has an open alert (a dashboard's one state)."""
    mine = [a for a in open_alerts if a.resident_id == resident_id]
    worst = max((a.severity for a in mine), key=lambda severity: severity.rank, default=None)
    return {
        "resident_id": resident_id,
        "active": bool(mine),
        "open": len(mine),
        "unacknowledged": sum(1 for a in mine if a.state is not AlertState.ACKNOWLEDGED),
        "severity": worst.value if worst is not None else None,
        "alert_ids": [a.alert_id for a in mine],
    }


def platform_event(record_type: RecordType, *, resident_id: str, device_id: str, at: datetime, synced: bool,
                   values: Mapping[str, EvidenceValue], tz: tzinfo) -> PlatformRecord:
    """``help_request``, ``fall`` and ``device_status`` records: stamped by the hub's clock."""
    return PlatformRecord(
        type=record_type,
        resident_id=resident_id,
        device=RecordDevice(device_id),
        measured_at=iso(at, tz),
        received_at=iso(at, tz),
        time_source=hub_time_source(synced),
        values=EventValues(dict(values)),
    )


def hub_record(record_type: str, *, resident_id: str, device_id: str, at: datetime, synced: bool,
               values: Mapping[str, EvidenceValue], tz: tzinfo) -> dict[str, Any]:
    return platform_event(RecordType(record_type), resident_id=resident_id, device_id=device_id, at=at,
                          synced=synced, values=values, tz=tz).as_json()


def compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
