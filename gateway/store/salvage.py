"""Best-effort rescue of undelivered records from an outbox that was moved aside as corrupt.

A damaged page usually spoils part of a table, not all of it. Rows are read one at a time in
rowid order, a range that fails is skipped, and whatever reads cleanly is copied into the fresh
outbox with its original record id: the platform deduplicates on that id, so a record that is
copied *and* read again from its device is still counted once. Blocking: call from the outbox's thread.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_ROWS_PER_STEP = 256
_MAX_FAILED_STEPS = 64
"""A file so damaged that this many ranges fail is not worth reading further."""


@dataclass(frozen=True, slots=True)
class SalvageReport:
    records: int
    active_alerts: int
    unreadable_ranges: int


_RECORD_COLUMNS = "record_id, type, priority, state, created_at, payload_json, dedupe_key, size_bytes"


def salvage(damaged: Path, target: sqlite3.Connection) -> SalvageReport:
    """Copy pending records and open alerts from ``damaged`` into ``target`` (an open, migrated outbox)."""
    try:
        source = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return SalvageReport(0, 0, 1)
    try:
        records, failed = _copy(source, target, "records", _RECORD_COLUMNS, "state = 'pending'")
        alerts, failed_alerts = _copy(source, target, "active_alerts", "alert_id, alert_json, updated_at", "1")
    finally:
        source.close()
    report = SalvageReport(records, alerts, failed + failed_alerts)
    log.warning("outbox salvage path=%s records=%d active_alerts=%d unreadable_ranges=%d",
                damaged, report.records, report.active_alerts, report.unreadable_ranges)
    return report


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, table: str, columns: str,
          where: str) -> tuple[int, int]:
    try:
        (last,) = source.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()  # noqa: S608 (fixed names)
    except sqlite3.Error:
        return 0, 1
    copied = failed = 0
    placeholders = ", ".join("?" for _ in columns.split(","))
    start = 0
    while last is not None and start <= last and failed < _MAX_FAILED_STEPS:
        end = start + _ROWS_PER_STEP
        try:
            rows = source.execute(
                f"SELECT {columns} FROM {table} WHERE rowid >= ? AND rowid < ? AND {where}",  # noqa: S608
                (start, end),
            ).fetchall()
        except sqlite3.Error:
            failed += 1
            rows = []
        if rows:
            target.execute("BEGIN IMMEDIATE")
            try:
                copied += sum(
                    target.execute(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
                                   row).rowcount
                    for row in rows
                )
                target.execute("COMMIT")
            except BaseException:
                target.execute("ROLLBACK")
                raise
        start = end
    return copied, failed
