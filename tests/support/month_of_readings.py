"""A month of a resident's readings and alerts in a real outbox, as the daemon would have stored them.

Blood pressure morning and evening, glucose before breakfast, with a hypertensive crisis, a low
glucose and two days the cuff was not used (the hub's schedule raised "measurement missed"). The
numbers come from a seeded generator, so a picture made from them is the same every time.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.model import BloodPressure, DeviceInfo, Glucose, HubTime, Measurement, Reading, TimeSource
from gateway.alerts.model import Alert, AlertState, Message
from gateway.store import DatabaseFile, records
from gateway.store.api import NewRecord, Priority
from gateway.vocabulary import AlertKind, Severity
from gateway.wire import alert_record, compact, reading_record

TZ = ZoneInfo("Asia/Shanghai")
CUFF = DeviceInfo(id="bp-bedroom", transport="ble")
METER = DeviceInfo(id="glucose-kitchen", transport="serial")
MISSED_DAYS = (9, 10)
"""Days (counted back from the end) the cuff stayed in its drawer."""


def _reading(resident: str, device: DeviceInfo, measurement: Measurement, at: datetime) -> NewRecord:
    reading = Reading(device=device, resident_id=resident, measurement=measurement, measured_at=at,
                      time_source=TimeSource.DEVICE, received=HubTime(wall=at, monotonic=0.0, synced=True))
    return NewRecord(measurement.type.value, Priority.READING, compact(reading_record(reading, TZ)), at)


def _alert(resident: str, kind: AlertKind, severity: Severity, at: datetime, n: int) -> list[NewRecord]:
    alert = Alert(alert_id=f"a-{n}", kind=kind, severity=severity, state=AlertState.RAISED, resident_id=resident,
                  raised_at=at, message=Message("", ""))
    records = [alert, alert.with_state(AlertState.ACKNOWLEDGED, acked_by="c-0001")]
    return [NewRecord("alert", Priority.ALERT, compact(alert_record(a, TZ, synced=True)), at) for a in records]


def month_records(resident: str, end: datetime, days: int = 30, seed: int = 20261123) -> list[NewRecord]:
    rng = random.Random(seed)
    first = (end - timedelta(days=days)).astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    records: list[NewRecord] = []
    for day in range(1, days + 1):
        date = first + timedelta(days=day)
        if date >= end:
            break
        back = days - day
        for hour in (7, 19):
            at = date.replace(hour=hour, minute=rng.randrange(0, 40))
            if back in MISSED_DAYS or at >= end:
                continue
            systolic, diastolic = rng.gauss(138, 9), rng.gauss(86, 6)
            if back == 18 and hour == 7:
                systolic, diastolic = 186, 118
            records.append(_reading(resident, CUFF, BloodPressure(systolic=round(systolic), diastolic=round(diastolic),
                                                                  pulse=round(rng.gauss(74, 6))), at))
        at = date.replace(hour=6, minute=rng.randrange(30, 59))
        if at < end:
            glucose = 3.4 if back == 6 else rng.gauss(7.2, 1.1)
            records.append(_reading(resident, METER, Glucose(mmol_l=round(glucose, 1)), at))
    crisis = first + timedelta(days=days - 18, hours=7, minutes=5)
    low = first + timedelta(days=days - 6, hours=7)
    records += _alert(resident, AlertKind.HYPERTENSIVE_CRISIS, Severity.URGENT, crisis, 1)
    records += _alert(resident, AlertKind.HYPOGLYCAEMIA, Severity.URGENT, low, 2)
    for n, back in enumerate(MISSED_DAYS, start=3):
        records += _alert(resident, AlertKind.MEASUREMENT_MISSED, Severity.WARNING,
                          first + timedelta(days=days - back, hours=21), n)
    return records


def write_month(outbox: Path, resident: str, end: datetime, days: int = 30) -> list[NewRecord]:
    """The month in the outbox at ``outbox`` (made if missing); the records written."""
    month = month_records(resident, end, days)
    with DatabaseFile.open(outbox) as box:
        box.run(records.accept(month))
    return month
