"""Best-effort rescue of undelivered records from an outbox that was moved aside as corrupt.

A damaged page usually spoils part of a table, not all of it. Rows are read a range at a time in
row order, a range that fails is skipped, and whatever reads cleanly is copied into the fresh
outbox with its original record id: the platform deduplicates on that id, so a record that is
copied *and* read again from its device is still counted once. Blocking: call from the outbox's thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
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


@dataclass(frozen=True, slots=True)
class _Source:
    """What to copy from a damaged file: its last row, and queries for the rows of a range [?, ?), tried
    in order until one reads."""

    last: str
    ranges: tuple[str, ...]


# Pending records, as (record_id, type, priority, created_at, payload_json, dedupe_key, size_bytes):
# the outbox's own layout (schema 6), or the one table of earlier versions (a file that broke before
# the gateway that migrates it ever opened it). In the layout of now a record's state is in another
# table than its data: where the queue does not read, every record of the range is copied, since
# sending one the platform has is harmless (it counts a record id once) and losing one is not.
_PENDING_NOW = _Source(
    "SELECT MAX(row) FROM record_rows",
    ("SELECT r.record_id, r.type, r.priority, r.created_at, r.payload_json, r.dedupe_key, r.size_bytes"
     " FROM record_rows AS r JOIN upload_queue AS q ON q.row = r.row WHERE r.row >= ? AND r.row < ?",
     "SELECT record_id, type, priority, created_at, payload_json, dedupe_key, size_bytes"
     " FROM record_rows WHERE row >= ? AND row < ?"),
)
_PENDING_BEFORE_6 = _Source(
    "SELECT MAX(rowid) FROM records",
    ("SELECT record_id, type, priority, created_at, payload_json, dedupe_key, size_bytes"
     " FROM records WHERE rowid >= ? AND rowid < ? AND state = 'pending'",),
)
_ALERTS = _Source("SELECT MAX(rowid) FROM active_alerts",
                  ("SELECT alert_id, alert_json, updated_at FROM active_alerts WHERE rowid >= ? AND rowid < ?",))


def salvage(damaged: Path, target: sqlite3.Connection) -> SalvageReport:
    """Copy pending records and open alerts from ``damaged`` into ``target`` (an open, migrated outbox)."""
    try:
        source = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return SalvageReport(0, 0, 1)
    try:
        pending = _PENDING_NOW if _has_table(source, "record_rows") else _PENDING_BEFORE_6
        records, failed = _copy(source, target, pending, _insert_record)
        alerts, failed_alerts = _copy(source, target, _ALERTS, _insert_alert)
    finally:
        source.close()
    report = SalvageReport(records, alerts, failed + failed_alerts)
    log.warning("outbox salvage path=%s records=%d active_alerts=%d unreadable_ranges=%d",
                damaged, report.records, report.active_alerts, report.unreadable_ranges)
    return report


def _has_table(source: sqlite3.Connection, name: str) -> bool:
    try:
        found = source.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return found is not None
    except sqlite3.Error:
        return True  # an unreadable schema: try the current layout, its ranges fail and are counted


def _insert_record(target: sqlite3.Connection, row: tuple[object, ...]) -> int:
    """A pending record into the fresh outbox, pending there too; 0 if it already has it."""
    cursor = target.execute(
        "INSERT OR IGNORE INTO record_rows (record_id, type, priority, created_at, payload_json, dedupe_key,"
        " size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    if cursor.rowcount == 0:
        return 0
    record_id, _, priority, created_at = row[:4]
    target.execute("INSERT INTO upload_queue (row, priority, created_at, record_id) VALUES (?, ?, ?, ?)",
                   (cursor.lastrowid, priority, created_at, record_id))
    return 1


def _insert_alert(target: sqlite3.Connection, row: tuple[object, ...]) -> int:
    return target.execute("INSERT OR IGNORE INTO active_alerts (alert_id, alert_json, updated_at) VALUES (?, ?, ?)",
                          row).rowcount


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, queries: _Source,
          insert: Callable[[sqlite3.Connection, tuple[object, ...]], int]) -> tuple[int, int]:
    try:
        (last,) = source.execute(queries.last).fetchone()
    except sqlite3.Error:
        return 0, 1
    copied = failed = 0
    start = 0
    while last is not None and start <= last and failed < _MAX_FAILED_STEPS:
        end = start + _ROWS_PER_STEP
        rows = _read_range(source, queries.ranges, start, end)
        if rows is None:
            failed += 1
        elif rows:
            target.execute("BEGIN IMMEDIATE")
            try:
                copied += sum(insert(target, row) for row in rows)
                target.execute("COMMIT")
            except BaseException:
                target.execute("ROLLBACK")
                raise
        start = end
    return copied, failed


def _read_range(source: sqlite3.Connection, queries: tuple[str, ...], start: int,
                end: int) -> list[tuple[object, ...]] | None:
    """The rows of [start, end) by the first query that reads them; None if none does."""
    for query in queries:
        try:
            return source.execute(query, (start, end)).fetchall()
        except sqlite3.Error:
            continue
    return None
