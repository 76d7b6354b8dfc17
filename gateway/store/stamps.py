"""The ``hub_stamps`` table: records stamped by an unsynchronised hub clock, and their correction.

A repository over one table: :func:`correct` builds the :class:`~gateway.store.work.Work` of a clock
step; :func:`add` runs inside the acceptance of :mod:`gateway.store.records`. Stamps are few (only
records stamped before network time) and leave with their record (the foreign key cascades) or once
a synchronised step has corrected them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta

from gateway.store.api import ClockCorrection, HubStamp, Retimed
from gateway.store.retime import estimated, shifted
from gateway.store.sqlite import to_us
from gateway.store.work import Tx, Work, write

FUTURE_TOLERANCE_S = 300.0
"""An earlier boot's record dated later than this past the synchronised clock is in the future."""


def add(conn: sqlite3.Connection, record_id: str, stamp: HubStamp) -> None:
    conn.execute("INSERT OR REPLACE INTO hub_stamps (record_id, boot_id, monotonic) VALUES (?, ?, ?)",
                 (record_id, stamp.boot_id, stamp.monotonic))


def stamped_before(stamp: HubStamp, corrections: Sequence[ClockCorrection]) -> list[ClockCorrection]:
    """The corrections already made that a record stamped at ``stamp`` (and stored only now) missed."""
    return [c for c in corrections if c.boot_id == stamp.boot_id and stamp.monotonic < c.before_monotonic]


def retimed_payload(payload: str, created_us: int, missed: Sequence[ClockCorrection]) -> tuple[str, int]:
    """A record's payload and ``created_at`` with the steps it missed applied, in order."""
    for correction in missed:
        payload = shifted(payload, timedelta(seconds=correction.delta_s), synced=correction.synced)
        created_us += round(correction.delta_s * 1_000_000)
    return payload, created_us


def correct(correction: ClockCorrection) -> Work[Retimed]:
    """The hub clock stepped: correct the pending records stamped before it, in one transaction."""

    def run(tx: Tx) -> Retimed:
        return _correct(tx.conn, correction)

    return write("correcting records for a clock step", run)


def _correct(conn: sqlite3.Connection, correction: ClockCorrection) -> Retimed:
    rows = conn.execute(
        "SELECT r.row, r.payload_json, r.created_at FROM hub_stamps AS s JOIN record_rows AS r USING (record_id)"
        " JOIN upload_queue AS q ON q.row = r.row WHERE s.boot_id = ? AND s.monotonic < ?",
        (correction.boot_id, correction.before_monotonic)).fetchall()
    for row, payload, created_us in rows:
        new_payload, new_created = retimed_payload(payload, created_us, [correction])
        _rewrite(conn, row, new_payload, new_created)
    estimated_count = 0
    if correction.synced:
        # Corrected for good; what was already uploaded keeps hub_unsynced (the platform has it).
        conn.execute("DELETE FROM hub_stamps WHERE boot_id = ? AND monotonic < ?",
                     (correction.boot_id, correction.before_monotonic))
        estimated_count = _estimate_earlier_boots(conn, correction)
    return Retimed(corrected=len(rows), estimated=estimated_count)


def _estimate_earlier_boots(conn: sqlite3.Connection, correction: ClockCorrection) -> int:
    """Earlier boots' pending records dated before the release or in the future: no step of theirs
    is left to correct them, so they take the start of this boot, the latest they can have happened."""
    floor_us = to_us(correction.plausible_from, "plausible_from")
    ceiling_us = to_us(correction.now, "now") + round(FUTURE_TOLERANCE_S * 1_000_000)
    rows = conn.execute(
        "SELECT r.row, r.record_id, r.payload_json FROM hub_stamps AS s JOIN record_rows AS r USING (record_id)"
        " JOIN upload_queue AS q ON q.row = r.row WHERE s.boot_id != ? AND (r.created_at < ? OR r.created_at > ?)",
        (correction.boot_id, floor_us, ceiling_us)).fetchall()
    started_us = to_us(correction.boot_started_at, "boot_started_at")
    for row, record_id, payload in rows:
        _rewrite(conn, row, estimated(payload, correction.boot_started_at), started_us)
        conn.execute("DELETE FROM hub_stamps WHERE record_id = ?", (record_id,))
    return len(rows)


def _rewrite(conn: sqlite3.Connection, row: int, payload: str, created_us: int) -> None:
    # The queue orders by the same date: both change together.
    conn.execute("UPDATE record_rows SET payload_json = ?, created_at = ?, size_bytes = ? WHERE row = ?",
                 (payload, created_us, len(payload.encode()), row))
    conn.execute("UPDATE upload_queue SET created_at = ? WHERE row = ?", (created_us, row))


HELD_CONDITION = ("NOT (q.created_at < :held_before AND EXISTS (SELECT 1 FROM hub_stamps AS s"
                  " WHERE s.record_id = q.record_id))")
"""For the uplink's query over ``upload_queue AS q``: a record stamped by a clock that was not set
(dated before the release) waits for the step that corrects it instead of reaching the platform in the wrong year."""
