"""What the family doctor's picture shows, taken from the outbox: the query, and the pure summary of it.

:func:`read_rows` is the only I/O: the resident's candidate rows from the outbox's ``records`` table
(read-only, so it is safe while the daemon runs). :func:`build_report` turns rows into
:class:`ReportData` without touching anything: blood pressure and glucose over the period, the
alerts raised, the resident's thresholds, and how many measurements the hub's schedule saw missed.
Plotting is :mod:`gateway.report.plot`'s.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.config.schema import Thresholds
from gateway.errors import ReportError

REPORT_TYPES = ("blood_pressure", "blood_glucose", "alert")


@dataclass(frozen=True, slots=True)
class BloodPressurePoint:
    at: datetime
    systolic: float
    diastolic: float


@dataclass(frozen=True, slots=True)
class GlucosePoint:
    at: datetime
    mmol_l: float


@dataclass(frozen=True, slots=True)
class AlertMark:
    at: datetime
    kind: str
    severity: str


@dataclass(frozen=True, slots=True)
class ReportData:
    resident_id: str
    start: datetime
    end: datetime
    thresholds: Thresholds
    blood_pressure: tuple[BloodPressurePoint, ...]
    glucose: tuple[GlucosePoint, ...]
    alerts: tuple[AlertMark, ...]
    """Every alert raised for the resident in the period, oldest first."""
    missed: int | None
    """Measurements the hub's schedule saw missed (``measurement_missed`` alerts); None: no schedule."""

    @property
    def has_readings(self) -> bool:
        return bool(self.blood_pressure or self.glucose)

    @property
    def days(self) -> int:
        return round((self.end - self.start).total_seconds() / 86400)


def read_rows(outbox: Path, since: datetime) -> list[tuple[str, str]]:
    """(type, payload JSON) of every blood pressure, glucose and alert record received since ``since``.

    A reading measured in the period was received in it too (received is never before measured), so
    the outbox's ``created_at`` (receive time, microseconds) bounds the scan.
    """
    if not outbox.exists():
        raise ReportError(f"no outbox at {outbox}: the gateway has not run with this configuration")
    try:
        conn = sqlite3.connect(f"{outbox.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise ReportError(f"cannot open {outbox}: {exc}; run as root or as the gateway's user") from exc
    try:
        placeholders = ",".join("?" * len(REPORT_TYPES))
        return [(str(t), str(p)) for t, p in conn.execute(
            f"SELECT type, payload_json FROM records WHERE type IN ({placeholders}) AND created_at >= ? "  # noqa: S608
            "ORDER BY created_at", (*REPORT_TYPES, int(since.timestamp() * 1_000_000)))]
    except sqlite3.Error as exc:
        raise ReportError(f"cannot read {outbox}: {exc}") from exc
    finally:
        conn.close()


def build_report(rows: Iterable[tuple[str, str]], *, resident_id: str, start: datetime, end: datetime,
                 thresholds: Thresholds, scheduled: bool) -> ReportData:
    """The report of one resident over ``[start, end)``; rows that are not well-formed records are skipped."""
    pressure: list[BloodPressurePoint] = []
    glucose: list[GlucosePoint] = []
    alerts: list[AlertMark] = []
    for record_type, payload in rows:
        record = _record(payload)
        if record is None or record.get("resident_id") != resident_id:
            continue
        at = _time(record.get("measured_at"))
        values = record.get("values")
        if at is None or not start <= at < end or not isinstance(values, dict):
            continue
        if record_type == "blood_pressure" and _numbers(values, "systolic", "diastolic"):
            pressure.append(BloodPressurePoint(at, float(values["systolic"]), float(values["diastolic"])))
        elif record_type == "blood_glucose" and _numbers(values, "value"):
            glucose.append(GlucosePoint(at, float(values["value"])))
        elif record_type == "alert" and values.get("state") == "raised":
            alerts.append(AlertMark(at, str(values.get("kind")), str(values.get("severity"))))
    missed = sum(1 for a in alerts if a.kind == "measurement_missed") if scheduled else None
    return ReportData(resident_id=resident_id, start=start, end=end, thresholds=thresholds,
                      blood_pressure=tuple(sorted(pressure, key=lambda p: p.at)),
                      glucose=tuple(sorted(glucose, key=lambda p: p.at)),
                      alerts=tuple(sorted(alerts, key=lambda a: a.at)), missed=missed)


def _record(payload: str) -> dict[str, object] | None:
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _time(text: object) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _numbers(values: dict[str, object], *keys: str) -> bool:
    return all(isinstance(values.get(k), int | float) and not isinstance(values.get(k), bool) for k in keys)
