"""Records as the provincial platform receives them (Platform Upload API v1), pure.

The outbox stores each record in this form at acceptance (minus ``record_id``,
which the outbox adds), so what is uploaded is exactly what was accepted, and
a later change of code cannot change a record waiting in the queue.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


def iso(ts: datetime, tz: tzinfo) -> str:
    """ISO 8601 with milliseconds and the local UTC offset, as in the contract's examples."""
    return ts.astimezone(tz).isoformat(timespec="milliseconds")


def _round(value: float | None, digits: int) -> float | int | None:
    if value is None:
        return None
    rounded = round(value, digits)
    return int(rounded) if digits == 0 else rounded


def measurement_values(m: Measurement) -> dict[str, Any]:
    values: dict[str, Any]
    match m:
        case BloodPressure():
            values = {"systolic": _round(m.systolic, 0), "diastolic": _round(m.diastolic, 0),
                      "mean_arterial": _round(m.mean_arterial, 0), "pulse": _round(m.pulse, 0)}
        case Glucose():
            values = {"value": _round(m.mmol_l, 2), "meal": m.meal.value, "sample": m.sample.value}
        case SpO2():
            values = {"spo2": _round(m.spo2, 1), "pulse": _round(m.pulse, 0),
                      "perfusion_index": _round(m.perfusion_index, 1)}
        case BodyTemperature():
            values = {"value": _round(m.celsius, 2), "site": m.site}
    return {k: v for k, v in values.items() if v is not None}


def reading_record(reading: Reading, tz: tzinfo) -> dict[str, Any]:
    device: dict[str, Any] = {"id": reading.device.id, "transport": reading.device.transport}
    if reading.device.model:
        device["model"] = reading.device.model
    if reading.device.serial_number:
        device["serial"] = reading.device.serial_number
    return {
        "type": reading.type.value,
        "resident_id": reading.resident_id,
        "device": device,
        "measured_at": iso(reading.measured_at, tz),
        "received_at": iso(reading.received.wall, tz),
        "time_source": reading.time_source.value,
        "values": measurement_values(reading.measurement),
        "unit": reading.measurement.unit,
        "flags": sorted(f.value for f in reading.flags),
    }


def local_reading_payload(reading: Reading, tz: tzinfo) -> dict[str, Any]:
    """``residents/{rid}/readings/{type}`` on the home broker: the record as uploaded, minus device identifiers."""
    record = reading_record(reading, tz)
    del record["device"]
    return record


def hub_time_source(synced: bool) -> TimeSource:
    return TimeSource.HUB if synced else TimeSource.HUB_UNSYNCED


def alert_record(alert: Alert, tz: tzinfo, *, synced: bool) -> dict[str, Any]:
    """The platform's ``alert`` record for one lifecycle state of an alert."""
    return {
        "type": "alert",
        "resident_id": alert.resident_id,
        "measured_at": iso(alert.raised_at, tz),
        "received_at": iso(alert.raised_at, tz),
        "time_source": hub_time_source(synced).value,
        "values": {
            "alert_id": alert.alert_id,
            "kind": alert.kind.value,
            "severity": alert.severity.value,
            "state": alert.state.value,
            "evidence": alert.evidence,
            "related_record_ids": list(alert.related_record_ids),
        },
        "flags": [],
    }


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


def hub_record(record_type: str, *, resident_id: str, device_id: str, at: datetime, synced: bool,
               values: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """``help_request``, ``fall`` and ``device_status`` records: stamped by the hub's clock."""
    return {
        "type": record_type,
        "resident_id": resident_id,
        "device": {"id": device_id},
        "measured_at": iso(at, tz),
        "received_at": iso(at, tz),
        "time_source": hub_time_source(synced).value,
        "values": values,
        "flags": [],
    }


def compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
